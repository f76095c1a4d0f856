"""Who may call the API: the role names, and OpenID Connect bearer tokens (JWT) checked against the
provider's published keys (JWKS), read from a file or fetched from a URL with a timeout and a cache."""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt

from aimatrix.settings import Settings

log = logging.getLogger("aimatrix.api.auth")


class Role(StrEnum):
    ADMIN = "admin"  # everything, including API keys; implies every other role
    MODELER = "modeler"  # deploys process definitions
    OPERATOR = "operator"  # starts, cancels and retries instances, sets variables, works tasks
    APPROVER = "approver"  # works its own tasks
    AUDITOR = "auditor"  # reads history


ROLE_NAMES = frozenset(role.value for role in Role)


class InvalidTokenError(Exception):
    """The bearer token is refused; the message says why (the API answers 401 with it)."""


class KeysUnavailableError(Exception):
    """The provider's keys cannot be read now: no token can be checked (the API answers 503)."""


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    roles: frozenset[str]
    groups: frozenset[str]
    tenant: str | None = None


@dataclass(frozen=True)
class OidcConfig:
    """The settings a verifier depends on; hashable, so one verifier (and JWKS cache) serves each."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    subject_claim: str
    roles_claim: str
    groups_claim: str
    tenant_claim: str
    leeway: float
    jwks_url: str | None
    jwks_file: Path | None
    jwks_timeout: float
    jwks_max_age: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """None when OIDC is off (Settings refuses a half-configured provider at start-up)."""
        if not (settings.oidc_issuer and settings.oidc_audience):
            return None
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            algorithms=settings.oidc_algorithm_names,
            subject_claim=settings.oidc_subject_claim,
            roles_claim=settings.oidc_roles_claim,
            groups_claim=settings.oidc_groups_claim,
            tenant_claim=settings.oidc_tenant_claim,
            leeway=settings.oidc_leeway_seconds,
            jwks_url=settings.oidc_jwks_url,
            jwks_file=settings.oidc_jwks_file,
            jwks_timeout=settings.oidc_jwks_timeout_seconds,
            jwks_max_age=settings.oidc_jwks_cache_seconds,
        )


def verifier_for(settings: Settings) -> TokenVerifier | None:
    config = OidcConfig.from_settings(settings)
    return None if config is None else _verifier(config)


@functools.cache
def _verifier(config: OidcConfig) -> TokenVerifier:
    # One per configuration for the process's lifetime: the JWKS cache must outlive a request.
    source: JwksSource
    if config.jwks_file is not None:
        source = JwksFile(config.jwks_file)
    elif config.jwks_url is not None:
        source = JwksUrl(config.jwks_url, timeout=config.jwks_timeout, max_age=config.jwks_max_age)
    else:
        raise ValueError("OIDC needs a JWKS URL or file")
    return TokenVerifier(config, source)


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts; generated API keys never contain a dot."""
    return token.count(".") == 2


class JwksSource(Protocol):
    def key(self, kid: str) -> dict[str, Any] | None:
        """The JWK with this key id, or None; raises KeysUnavailableError if no keys can be read."""
        ...


def parse_jwks(text: str | bytes, *, origin: str) -> dict[str, dict[str, Any]]:
    """The keys of a JWK Set by key id. Keys without a `kid` are left out: tokens name their key."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise KeysUnavailableError(f"{origin} is not JSON: {err}") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeysUnavailableError(f"{origin} is not a JWK Set: it has no 'keys' list")
    by_kid: dict[str, dict[str, Any]] = {}
    for key in keys:
        if isinstance(key, dict) and isinstance(key.get("kid"), str):
            by_kid.setdefault(key["kid"], key)
    return by_kid


class JwksFile:
    """Keys from a local file, re-read when it changes, so rotating keys needs no restart."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> dict[str, Any] | None:
        with self._lock:
            try:
                stat = self._path.stat()
                stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                if stamp != self._stamp:
                    self._keys = parse_jwks(self._path.read_bytes(), origin=f"JWKS file {self._path}")
                    self._stamp = stamp
            except OSError as err:
                self._keep_or_raise(f"cannot read JWKS file {self._path}: {err.strerror or err}")
            except KeysUnavailableError as err:
                self._keep_or_raise(str(err))
            assert self._keys is not None
            return self._keys.get(kid)

    def _keep_or_raise(self, message: str) -> None:
        if self._keys is None:
            raise KeysUnavailableError(message)
        # Caught mid-rewrite, most likely: the previous keys stay valid until it settles.
        log.warning("%s; keeping the keys read before", message)


class JwksUrl:
    """Keys fetched from the provider: cached for `max_age`, fetched again early for an unknown key id
    (the provider rotated its keys), but at most once per `retry_interval`, so tokens with made-up
    key ids or a provider that is down cannot turn every request into a fetch."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_age: float,
        retry_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._max_age = max_age
        self._retry_interval = retry_interval
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._last_error = ""
        # Held across the fetch: concurrent requests wait for one fetch instead of each making their own.
        self._lock = threading.Lock()

    def key(self, kid: str) -> dict[str, Any] | None:
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self._max_age:
                self._refresh(now)
            assert self._keys is not None
            found = self._keys.get(kid)
            if found is None and now - self._attempted_at >= self._retry_interval:
                self._refresh(now)
                found = self._keys.get(kid)
            return found

    def _refresh(self, now: float) -> None:
        if now - self._attempted_at < self._retry_interval:
            if self._keys is None:
                raise KeysUnavailableError(self._last_error)
            return
        self._attempted_at = now
        try:
            keys = self._fetch()
        except KeysUnavailableError as err:
            self._last_error = str(err)
            if self._keys is None:
                raise
            log.warning("%s; keeping the keys fetched before", err)
            return
        self._keys = keys
        self._fetched_at = now

    def _fetch(self) -> dict[str, dict[str, Any]]:
        origin = f"JWKS URL {self._url}"
        try:
            # No redirects: the configured URL, and only it, decides which keys are trusted.
            response = httpx.get(self._url, timeout=self._timeout, follow_redirects=False)
        except httpx.TimeoutException:
            raise KeysUnavailableError(f"{origin} did not answer within {self._timeout:g} s") from None
        except httpx.HTTPError as err:
            raise KeysUnavailableError(f"{origin} cannot be reached: {type(err).__name__}") from None
        if response.status_code != 200:
            raise KeysUnavailableError(f"{origin} answered HTTP {response.status_code}")
        return parse_jwks(response.content, origin=origin)


# Which JWK key type (and curve) may verify which algorithm: a key is used only for its own family,
# which is what stops algorithm confusion (say, an RSA public key used as an HMAC secret).
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class TokenVerifier:
    def __init__(self, config: OidcConfig, source: JwksSource) -> None:
        self.config = config
        self._source = source

    def verify(self, token: str) -> VerifiedToken:
        """The token's identity; raises InvalidTokenError (401) or KeysUnavailableError (503)."""
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as err:
            raise InvalidTokenError(f"malformed token: {err}") from None
        alg = header.get("alg")
        # Checked before any key is looked at: 'none' and HMAC algorithms never reach verification.
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise InvalidTokenError(
                f"token algorithm {_short(alg)} is not accepted (accepted: {', '.join(config.algorithms)})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("token has no key id ('kid' header)")
        jwk = self._source.key(kid)
        if jwk is None:
            raise InvalidTokenError(f"token is signed with an unknown key {_short(kid)}")
        key = _verification_key(jwk, kid=kid, alg=alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                issuer=config.issuer,
                audience=config.audience,
                leeway=config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidTokenError("token is not valid yet ('nbf' or 'iat' in the future)") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError(f"token was not issued by {config.issuer!r}") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError(f"token is not meant for audience {config.audience!r}") from None
        except jwt.MissingRequiredClaimError as err:
            raise InvalidTokenError(f"token has no '{err.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("token signature does not verify") from None
        except jwt.InvalidTokenError as err:
            raise InvalidTokenError(f"token refused: {err}") from None
        subject = _claim(claims, config.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError(f"token has no '{config.subject_claim}' claim naming the user")
        tenant = _claim(claims, config.tenant_claim)
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise InvalidTokenError(f"token claim '{config.tenant_claim}' must be a non-empty string")
        return VerifiedToken(
            subject=subject,
            roles=_names(claims, config.roles_claim),
            groups=_names(claims, config.groups_claim),
            tenant=tenant,
        )


def _verification_key(jwk: Mapping[str, Any], *, kid: str, alg: str) -> Any:
    kty = jwk.get("kty")
    if kty != _KEY_TYPES.get(alg[:2]):
        raise InvalidTokenError(f"key {_short(kid)} is a {_short(kty)} key and cannot verify {alg}")
    if jwk.get("alg") not in (None, alg):
        raise InvalidTokenError(f"key {_short(kid)} is for {_short(jwk.get('alg'))}, not {alg}")
    if jwk.get("use") not in (None, "sig"):
        raise InvalidTokenError(f"key {_short(kid)} is not a signing key")
    if alg in _CURVES and jwk.get("crv") != _CURVES[alg]:
        raise InvalidTokenError(f"key {_short(kid)} is on curve {_short(jwk.get('crv'))}, not {_CURVES[alg]}")
    # Public members only: a provider that publishes a private key by mistake still gets verification.
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}
    try:
        return jwt.PyJWK(public, algorithm=alg).key
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as err:
        # A broken key on the provider's side, not the caller's fault: 503 naming it, logged by the caller.
        raise KeysUnavailableError(f"JWKS key {_short(kid)} is unusable: {err}") from None


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`; failing that, a dotted path into nested claims ('realm_access.roles')."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    value = _claim(claims, name)
    if value is None:
        return frozenset()
    # Some providers send one space-separated string, as the OAuth 'scope' claim does.
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise InvalidTokenError(f"token claim '{name}' must be a list of strings")


def _short(value: object) -> str:
    """A token's own values, quoted and cut short: the detail must not echo whatever a caller sends."""
    text = repr(value)
    return text if len(text) <= 66 else text[:63] + "...'"
