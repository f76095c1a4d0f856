"""Access control: which role may call which endpoint, and OIDC bearer tokens (JWT) checked against a
JWKS read from a file or fetched over loopback HTTP. Keys are generated here: no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError
from temporalio.client import Client

from aimatrix.settings import Settings
from api.auth import (
    InvalidTokenError,
    JwksFile,
    JwksUrl,
    KeysUnavailableError,
    OidcConfig,
    TokenVerifier,
    VerifiedToken,
)
from api.main import create_app
from tests.api.routes.test_api_keys import bearer, create_key
from tests.conftest import API_KEY, fresh_database_url
from tests.helpers import EXAMPLES, deploy, deploy_text, http_server, start, wait_for, wait_for_tasks

ROLES = ("admin", "modeler", "operator", "approver", "auditor")
EVERYONE = frozenset(ROLES)
# endpoint -> the roles allowed to call it; every other role gets 403
ALLOWED = {
    "deploy": frozenset({"admin", "modeler"}),
    "list-definitions": EVERYONE,
    "get-definition": EVERYONE,
    "definition-xml": EVERYONE,
    "list-tasks": frozenset({"admin", "operator", "approver"}),
    "complete-task": frozenset({"admin", "operator", "approver"}),
    "list-api-keys": frozenset({"admin"}),
    "start-instance": frozenset({"admin", "operator"}),
    "list-instances": EVERYONE,
    "get-instance": EVERYONE,
    "cancel-instance": frozenset({"admin", "operator"}),
    "set-variables": frozenset({"admin", "operator"}),
    "list-incidents": EVERYONE,
    "retry-incident": frozenset({"admin", "operator"}),
    "instance-history": frozenset({"admin", "operator", "auditor"}),
    "audit-search": frozenset({"admin", "auditor"}),
    "audit-verify": frozenset({"admin", "auditor"}),
    "get-task": frozenset({"admin", "operator", "approver"}),
    "publish-message": frozenset({"admin", "operator"}),
    "list-subscriptions": frozenset({"admin", "operator", "auditor"}),
}

MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="task"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task" />
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


# ---------------------------------------------------------------------------------------------------
# The role matrix, with API keys, on the shared app


@pytest.fixture(scope="module")
async def role_keys(api: httpx.AsyncClient) -> dict[str, str]:
    """One key per role, and the definitions the matrix reads."""
    keys = {role: (await create_key(api, role))["key"] for role in ROLES}
    assert (await deploy_text(api, "auth_matrix.bpmn", MODEL.format(key="auth_matrix"))).status_code in (200, 201)
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    return keys


async def call(api: httpx.AsyncClient, endpoint: str, headers: dict[str, str], task_id: str = "nope") -> httpx.Response:
    if endpoint == "deploy":
        xml = MODEL.format(key=f"auth_{uuid.uuid4().hex[:8]}").encode()
        return await api.post("/deployments", files=[("files", ("m.bpmn", xml, "application/xml"))], headers=headers)
    if endpoint == "list-definitions":
        return await api.get("/definitions", headers=headers)
    if endpoint == "get-definition":
        return await api.get("/definitions/auth_matrix", headers=headers)
    if endpoint == "definition-xml":
        return await api.get("/definitions/auth_matrix/versions/1/xml", headers=headers)
    if endpoint == "list-tasks":
        return await api.get("/tasks", headers=headers)
    if endpoint == "complete-task":
        return await api.post(f"/tasks/{task_id}/complete", json={"variables": {"approved": True}}, headers=headers)
    if endpoint == "list-api-keys":
        return await api.get("/api-keys", headers=headers)
    if endpoint == "start-instance":
        return await api.post("/instances", json={"definition_key": "auth_matrix"}, headers=headers)
    if endpoint == "list-instances":
        return await api.get("/instances", headers=headers)
    if endpoint == "get-instance":
        return await api.get(f"/instances/{await _instance(api)}", headers=headers)
    if endpoint == "cancel-instance":
        return await api.post(f"/instances/{await _instance(api, waiting=True)}/cancel", headers=headers)
    if endpoint == "set-variables":
        instance = await _instance(api, waiting=True)
        return await api.patch(f"/instances/{instance}/variables", json={"variables": {"y": 2}}, headers=headers)
    if endpoint == "list-incidents":
        return await api.get("/incidents", headers=headers)
    if endpoint == "instance-history":
        return await api.get(f"/instances/{await _instance(api)}/history", headers=headers)
    if endpoint == "audit-search":
        return await api.get("/audit", headers=headers)
    if endpoint == "audit-verify":
        return await api.get("/audit/verify", headers=headers)
    if endpoint == "get-task":
        response = await api.get("/tasks/no-such-task", headers=headers)
        return httpx.Response(204) if response.status_code == 404 else response
    if endpoint == "publish-message":
        response = await api.post("/messages", json={"name": "auth-matrix-nobody"}, headers=headers)
        return httpx.Response(204) if response.status_code == 404 else response
    if endpoint == "list-subscriptions":
        return await api.get("/messages/subscriptions", headers=headers)
    if endpoint == "retry-incident":
        response = await api.post("/incidents/no-such-incident/retry", json={}, headers=headers)
        # allowed roles get as far as the lookup: 404 proves the role check let them through
        return httpx.Response(204) if response.status_code == 404 else response
    raise AssertionError(endpoint)


async def _instance(api: httpx.AsyncClient, waiting: bool = False) -> str:
    """An instance started with the admin key: finished, or waiting at a user task."""
    if waiting:
        return await start(api, "order_approval", {"price": 500, "quantity": 1, "notify_url": "http://127.0.0.1:9"})
    return await start(api, "auth_matrix")


def assert_forbidden(response: httpx.Response, endpoint: str, role: str) -> None:
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    for needed in ALLOWED[endpoint] - {"admin"} or {"admin"}:
        assert f"'{needed}'" in detail, detail
    assert detail.endswith(f"has roles: {role}"), detail


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", [e for e in ALLOWED if e != "complete-task"])
async def test_role_matrix(api: httpx.AsyncClient, role_keys: dict[str, str], endpoint: str, role: str) -> None:
    response = await call(api, endpoint, bearer(role_keys[role]))
    if role in ALLOWED[endpoint]:
        assert 200 <= response.status_code < 300, response.text
    else:
        assert_forbidden(response, endpoint, role)


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix_completing_a_real_task(api: httpx.AsyncClient, role_keys: dict[str, str], role: str) -> None:
    with http_server() as (url, _):
        instance = await start(api, "order_approval", {"price": 500, "quantity": 1, "notify_url": url})
        [task] = await wait_for_tasks(api, instance)
        response = await call(api, "complete-task", bearer(role_keys[role]), task_id=task["id"])
        if role in ALLOWED["complete-task"]:
            assert response.status_code == 200, response.text
        else:
            assert_forbidden(response, "complete-task", role)
            # refused before reaching the engine: the task is still open, and an admin can complete it
            assert [t["id"] for t in await wait_for_tasks(api, instance)] == [task["id"]]
            assert (await call(api, "complete-task", {}, task_id=task["id"])).status_code == 200
        await wait_for(api, instance, "completed")


@pytest.fixture(scope="module")
async def revoked_key(api: httpx.AsyncClient) -> str:
    created = await create_key(api, "admin")
    assert (await api.delete(f"/api-keys/{created['id']}")).status_code == 204
    key: str = created["key"]
    return key


@pytest.mark.parametrize("credentials", ["missing", "not-bearer", "unknown", "revoked", "jwt-without-oidc"])
@pytest.mark.parametrize("endpoint", list(ALLOWED))
async def test_no_valid_credentials_is_401_everywhere(
    api: httpx.AsyncClient, revoked_key: str, endpoint: str, credentials: str
) -> None:
    headers, detail = {
        "missing": ({"Authorization": ""}, "missing bearer token"),
        "not-bearer": ({"Authorization": f"Basic {API_KEY}"}, "missing bearer token"),
        "unknown": (bearer("amx_made_up"), "unknown or revoked API key"),
        "revoked": (bearer(revoked_key), "unknown or revoked API key"),
        "jwt-without-oidc": (bearer("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), "OIDC is not configured"),
    }[credentials]
    response = await call(api, endpoint, headers)
    assert response.status_code == 401, response.text
    assert detail in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


# ---------------------------------------------------------------------------------------------------
# OIDC bearer tokens

ISSUER = "https://idp.example.test/realms/aimatrix"
AUDIENCE = "aimatrix-api"


@dataclass(frozen=True)
class SigningKeys:
    rsa: rsa.RSAPrivateKey  # published as "rsa-1"
    ec: ec.EllipticCurvePrivateKey  # published as "ec-1"
    stranger: rsa.RSAPrivateKey  # published nowhere

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.rsa, "rsa-1"), public_jwk(self.ec, "ec-1")]}


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        stranger=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, keys: SigningKeys) -> Path:
    path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    path.write_text(json.dumps(keys.jwks()))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid claim set; an override of None leaves the claim out."""
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, "roles": ["auditor"]}
    return {name: value for name, value in {**base, **overrides}.items() if value is not None}


def sign(key: Any, *, alg: str = "RS256", kid: str | None = "rsa-1", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], sign_with: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign_with(signing_input.encode()))}"


def oidc_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        AIMATRIX_DATA_DIR=data_dir,
        AIMATRIX_API_KEY=API_KEY,
        AIMATRIX_OIDC_ISSUER=ISSUER,
        AIMATRIX_OIDC_AUDIENCE=AUDIENCE,
        **extra,
    )


@asynccontextmanager
async def app_client(settings: Settings, temporal: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with these settings, and a client that sends no credentials of its own."""
    app = create_app(settings, temporal=temporal)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1") as http:
            yield http


@pytest.fixture(scope="module")
async def oidc_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, client: Client, jwks_file: Path
) -> AsyncIterator[httpx.AsyncClient]:
    data_dir = tmp_path_factory.mktemp("oidc-app")
    settings = oidc_settings(
        data_dir, AIMATRIX_OIDC_JWKS_FILE=jwks_file, DATABASE_URL=fresh_database_url(request, data_dir)
    )
    async with app_client(settings, client) as http:
        yield http


async def test_a_valid_token_carries_the_roles_of_its_claims(oidc_api: httpx.AsyncClient, keys: SigningKeys) -> None:
    auditor = bearer(sign(keys.rsa, roles=["auditor"]))
    assert (await oidc_api.get("/definitions", headers=auditor)).status_code == 200
    refused = await oidc_api.get("/tasks", headers=auditor)
    assert refused.status_code == 403
    assert (
        refused.json()["detail"]
        == "this needs the role 'admin' or 'approver' or 'operator'; 'alice' has roles: auditor"
    )

    modeler = bearer(sign(keys.ec, alg="ES256", kid="ec-1", sub="bob", roles=["modeler"]))
    xml = MODEL.format(key="deployed_with_a_token").encode()
    deployed = await oidc_api.post("/deployments", files=[("files", ("t.bpmn", xml))], headers=modeler)
    assert deployed.status_code == 201, deployed.text

    # a space-separated string, as some providers send, counts too
    operator = bearer(sign(keys.rsa, roles="operator approver"))
    assert (await oidc_api.get("/tasks", headers=operator)).status_code == 200

    admin = bearer(sign(keys.rsa, roles=["admin"]))
    assert (await oidc_api.get("/api-keys", headers=admin)).status_code == 200


async def test_a_token_without_platform_roles_gets_nothing(oidc_api: httpx.AsyncClient, keys: SigningKeys) -> None:
    for roles in (None, [], ["offline_access", "uma_authorization"]):
        response = await oidc_api.get("/definitions", headers=bearer(sign(keys.rsa, roles=roles)))
        assert response.status_code == 403, roles
    assert response.json()["detail"].endswith("'alice' has roles: offline_access, uma_authorization")


async def test_api_keys_still_work_when_oidc_is_on(oidc_api: httpx.AsyncClient) -> None:
    assert (await oidc_api.get("/api-keys", headers=bearer(API_KEY))).status_code == 200
    created = await oidc_api.post(
        "/api-keys", json={"name": "beside-oidc", "roles": ["auditor"]}, headers=bearer(API_KEY)
    )
    assert (await oidc_api.get("/definitions", headers=bearer(created.json()["key"]))).status_code == 200


def _tampered(keys: SigningKeys) -> str:
    header, _, signature = sign(keys.rsa, roles=["auditor"]).split(".")
    return f"{header}.{b64(json.dumps(claims(roles=['admin'])).encode())}.{signature}"


def _hs256_with_the_public_key(keys: SigningKeys) -> str:
    # The classic confusion: the RSA public key (public by definition) used as an HMAC secret.
    pem = keys.rsa.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    return forge(header, claims(roles=["admin"]), lambda data: hmac.new(pem, data, hashlib.sha256).digest())


def _alg_none(keys: SigningKeys) -> str:
    return forge({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(roles=["admin"]), lambda _: b"")


REFUSED: list[tuple[str, Callable[[SigningKeys], str], str]] = [
    ("expired", lambda k: sign(k.rsa, exp=int(time.time()) - 120), "token has expired"),
    ("wrong-issuer", lambda k: sign(k.rsa, iss="https://evil.example"), f"token was not issued by '{ISSUER}'"),
    ("wrong-audience", lambda k: sign(k.rsa, aud="another-app"), f"token is not meant for audience '{AUDIENCE}'"),
    ("no-audience", lambda k: sign(k.rsa, aud=None), "token has no 'aud' claim"),
    ("no-expiry", lambda k: sign(k.rsa, exp=None), "token has no 'exp' claim"),
    ("no-subject", lambda k: sign(k.rsa, sub=None), "token has no 'sub' claim naming the user"),
    ("not-yet-valid", lambda k: sign(k.rsa, nbf=int(time.time()) + 600), "token is not valid yet"),
    ("alg-none", _alg_none, "token algorithm 'none' is not accepted (accepted: RS256, ES256)"),
    ("hs256-key-confusion", _hs256_with_the_public_key, "token algorithm 'HS256' is not accepted"),
    ("alg-not-allowed", lambda k: sign(k.rsa, alg="RS384"), "token algorithm 'RS384' is not accepted"),
    (
        "unknown-kid",
        lambda k: sign(k.stranger, kid="rotated-away"),
        "token is signed with an unknown key 'rotated-away'",
    ),
    ("no-kid", lambda k: sign(k.rsa, kid=None), "token has no key id ('kid' header)"),
    ("wrong-key-same-kid", lambda k: sign(k.stranger), "token signature does not verify"),
    ("tampered-claims", _tampered, "token signature does not verify"),
    ("rsa-alg-on-ec-key", lambda k: sign(k.rsa, kid="ec-1"), "key 'ec-1' is a 'EC' key and cannot verify RS256"),
    ("roles-not-strings", lambda k: sign(k.rsa, roles=[1, 2]), "token claim 'roles' must be a list of strings"),
    ("malformed", lambda k: "abc.def.ghi", "malformed token"),
]


@pytest.mark.parametrize(("make", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
async def test_refused_tokens_are_401_saying_why(
    oidc_api: httpx.AsyncClient, keys: SigningKeys, make: Callable[[SigningKeys], str], fragment: str
) -> None:
    response = await oidc_api.get("/definitions", headers=bearer(make(keys)))
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert detail.startswith("invalid bearer token: "), detail
    assert fragment in detail, detail
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expiry_allows_a_little_clock_skew(oidc_api: httpx.AsyncClient, keys: SigningKeys) -> None:
    slightly_late = sign(keys.rsa, exp=int(time.time()) - 5)  # within the default 30 s leeway
    assert (await oidc_api.get("/definitions", headers=bearer(slightly_late))).status_code == 200


def verifier(jwks: Path, **settings: Any) -> TokenVerifier:
    config = OidcConfig.from_settings(oidc_settings(jwks.parent, AIMATRIX_OIDC_JWKS_FILE=jwks, **settings))
    assert config is not None
    return TokenVerifier(config, JwksFile(jwks))


def test_claim_names_are_configurable(jwks_file: Path, keys: SigningKeys) -> None:
    check = verifier(
        jwks_file,
        AIMATRIX_OIDC_SUBJECT_CLAIM="preferred_username",
        AIMATRIX_OIDC_ROLES_CLAIM="realm_access.roles",  # a path into nested claims, as Keycloak sends them
        AIMATRIX_OIDC_GROUPS_CLAIM="https://aimatrix.example/groups",  # a namespaced claim, dots and all
    )
    token = sign(
        keys.rsa,
        preferred_username="carol",
        realm_access={"roles": ["operator", "approver"]},
        roles=["admin"],  # not the configured claim: ignored
        **{"https://aimatrix.example/groups": ["finance", "cn=ops,ou=people"]},
    )
    assert check.verify(token) == VerifiedToken(
        subject="carol", roles=frozenset({"operator", "approver"}), groups=frozenset({"finance", "cn=ops,ou=people"})
    )
    with pytest.raises(InvalidTokenError, match="no 'preferred_username' claim"):
        check.verify(sign(keys.rsa))


def test_the_tenant_claim_confines_a_token(jwks_file: Path, keys: SigningKeys) -> None:
    check = verifier(jwks_file, AIMATRIX_OIDC_TENANT_CLAIM="org.id")
    token = sign(keys.rsa, roles=["operator"], org={"id": "acme"}, tenant="globex")  # only the configured claim
    assert check.verify(token).tenant == "acme"
    assert check.verify(sign(keys.rsa, roles=["operator"])).tenant is None  # no claim: platform-wide
    with pytest.raises(InvalidTokenError, match=r"'org\.id' must be a non-empty string"):
        check.verify(sign(keys.rsa, org={"id": ["acme", "globex"]}))


async def test_a_token_of_a_tenant_sees_only_that_tenant(oidc_api: httpx.AsyncClient, keys: SigningKeys) -> None:
    acme = bearer(sign(keys.rsa, sub="ann", roles=["modeler"], tenant="acme"))
    xml = MODEL.format(key="token_tenant_acme").encode()
    assert (await oidc_api.post("/deployments", files=[("files", ("a.bpmn", xml))], headers=acme)).status_code == 201
    globex = bearer(sign(keys.rsa, sub="gus", roles=["modeler"], tenant="globex"))
    assert (await oidc_api.get("/definitions/token_tenant_acme", headers=globex)).status_code == 404
    assert (await oidc_api.get("/definitions/token_tenant_acme", headers=acme)).status_code == 200


def test_key_confusion_is_refused_even_if_hmac_were_allowed(tmp_path: Path, jwks_file: Path, keys: SigningKeys) -> None:
    # Settings refuse HS256; should a config slip through anyway, an RSA key still never verifies HMAC.
    base = verifier(jwks_file).config
    lax = TokenVerifier(replace(base, algorithms=("RS256", "HS256")), JwksFile(jwks_file))
    with pytest.raises(InvalidTokenError, match="key 'rsa-1' is a 'RSA' key and cannot verify HS256"):
        lax.verify(_hs256_with_the_public_key(keys))

    # a key that names its algorithm is used for that one only
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps({"keys": [{**public_jwk(keys.rsa, "rsa-1"), "alg": "RS256"}]}))
    check = verifier(pinned, AIMATRIX_OIDC_ALGORITHMS="RS256,RS512")
    with pytest.raises(InvalidTokenError, match="key 'rsa-1' is for 'RS256', not RS512"):
        check.verify(sign(keys.rsa, alg="RS512"))
    assert check.verify(sign(keys.rsa)).subject == "alice"


def test_the_jwks_file_is_read_again_when_it_changes(tmp_path: Path, keys: SigningKeys) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(keys.rsa, "rsa-1")]}))
    check = verifier(path)
    assert check.verify(sign(keys.rsa)).subject == "alice"
    with pytest.raises(InvalidTokenError, match="unknown key 'next'"):
        check.verify(sign(keys.stranger, kid="next"))
    path.write_text(json.dumps({"keys": [public_jwk(keys.rsa, "rsa-1"), public_jwk(keys.stranger, "next")]}))
    assert check.verify(sign(keys.stranger, kid="next")).subject == "alice"
    # a broken rewrite keeps the keys read before rather than locking everyone out
    path.write_text("{half a file")
    assert check.verify(sign(keys.stranger, kid="next")).subject == "alice"


def test_a_missing_or_broken_jwks_file_is_reported(tmp_path: Path, keys: SigningKeys) -> None:
    with pytest.raises(KeysUnavailableError, match=r"cannot read JWKS file .*missing\.json"):
        verifier(tmp_path / "missing.json").verify(sign(keys.rsa))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"kid": "not-a-set"}))
    with pytest.raises(KeysUnavailableError, match="is not a JWK Set"):
        verifier(broken).verify(sign(keys.rsa))


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"AIMATRIX_OIDC_ISSUER": ISSUER}, "set AIMATRIX_OIDC_AUDIENCE and (AIMATRIX_OIDC_JWKS_URL or"),
        ({"AIMATRIX_OIDC_AUDIENCE": AUDIENCE, "AIMATRIX_OIDC_JWKS_FILE": "/x"}, "set AIMATRIX_OIDC_ISSUER"),
        (
            {"AIMATRIX_OIDC_ISSUER": ISSUER, "AIMATRIX_OIDC_AUDIENCE": AUDIENCE,
             "AIMATRIX_OIDC_JWKS_FILE": "/x", "AIMATRIX_OIDC_JWKS_URL": "https://idp.example/jwks"},
            "not both",
        ),
        (
            {"AIMATRIX_OIDC_ISSUER": ISSUER, "AIMATRIX_OIDC_AUDIENCE": AUDIENCE,
             "AIMATRIX_OIDC_JWKS_URL": "http://idp.example/jwks"},
            "must be an https:// URL",
        ),
        ({"AIMATRIX_OIDC_ALGORITHMS": "RS256,HS256"}, "HS256 not accepted"),
        ({"AIMATRIX_OIDC_ALGORITHMS": "none"}, "none not accepted"),
        ({"AIMATRIX_OIDC_ALGORITHMS": " , "}, "needs at least one algorithm"),
    ],
    ids=["no-audience-no-jwks", "no-issuer", "url-and-file", "plain-http", "hmac", "none", "empty"],
)  # fmt: skip
def test_a_half_or_unsafe_oidc_configuration_is_refused(settings: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(")):
        Settings(**settings)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# JWKS over HTTP: a loopback server stands in for the provider


class JwksServer(ThreadingHTTPServer):
    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _JwksHandler)
        self.document = document
        self.status = 200
        self.hits = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/.well-known/jwks.json"


class _JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = cast(JwksServer, self.server)
        server.hits += 1
        body = json.dumps(server.document).encode() if server.status == 200 else b"{}"
        self.send_response(server.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def jwks_server(document: dict[str, Any]) -> Iterator[JwksServer]:
    server = JwksServer(document)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_tokens_checked_against_a_jwks_url(
    request: pytest.FixtureRequest, client: Client, tmp_path: Path, keys: SigningKeys
) -> None:
    with jwks_server(keys.jwks()) as server:
        settings = oidc_settings(
            tmp_path, AIMATRIX_OIDC_JWKS_URL=server.url, DATABASE_URL=fresh_database_url(request, tmp_path)
        )
        async with app_client(settings, client) as http:
            for _ in range(3):
                assert (await http.get("/definitions", headers=bearer(sign(keys.rsa)))).status_code == 200
            assert server.hits == 1  # cached
            forged = await http.get("/definitions", headers=bearer(sign(keys.stranger)))
            assert forged.status_code == 401


async def test_an_unreachable_jwks_url_is_503_not_401(
    request: pytest.FixtureRequest, client: Client, tmp_path: Path, keys: SigningKeys
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = fresh_database_url(request, tmp_path)
    settings = oidc_settings(tmp_path, AIMATRIX_OIDC_JWKS_URL=f"http://127.0.0.1:{port}/jwks", DATABASE_URL=url)
    async with app_client(settings, client) as http:
        response = await http.get("/definitions", headers=bearer(sign(keys.rsa)))
    assert response.status_code == 503
    assert response.json()["detail"].startswith(
        f"bearer tokens cannot be checked now: JWKS URL http://127.0.0.1:{port}"
    )


def test_jwks_url_cache_expiry_and_key_rotation(keys: SigningKeys) -> None:
    clock = FakeClock()
    with jwks_server({"keys": [public_jwk(keys.rsa, "rsa-1")]}) as server:
        source = JwksUrl(server.url, timeout=2, max_age=300, retry_interval=10, clock=clock)
        assert source.key("rsa-1") is not None and server.hits == 1
        clock.now += 299
        assert source.key("rsa-1") is not None and server.hits == 1

        # the provider rotates: an unknown kid fetches again, but not more than once per retry interval
        server.document = {"keys": [public_jwk(keys.rsa, "rsa-1"), public_jwk(keys.stranger, "rsa-2")]}
        assert source.key("rsa-2") is not None and server.hits == 2
        for _ in range(5):
            assert source.key(f"made-up-{_}") is None
        assert server.hits == 2
        clock.now += 10
        assert source.key("made-up-again") is None and server.hits == 3

        # after max_age the set is fetched again even for known keys
        clock.now += 300
        assert source.key("rsa-1") is not None and server.hits == 4


def test_jwks_url_outage_keeps_the_cached_keys(keys: SigningKeys) -> None:
    clock = FakeClock()
    with jwks_server(keys.jwks()) as server:
        source = JwksUrl(server.url, timeout=2, max_age=60, retry_interval=10, clock=clock)
        assert source.key("rsa-1") is not None
        server.status = 500
        clock.now += 61
        assert source.key("rsa-1") is not None  # stale but still the provider's keys
        assert server.hits == 2

        # with nothing cached there is nothing to fall back on, and no fetch on every request either
        fresh = JwksUrl(server.url, timeout=2, max_age=60, retry_interval=10, clock=clock)
        for _ in range(3):
            with pytest.raises(KeysUnavailableError, match="answered HTTP 500"):
                fresh.key("rsa-1")
        assert server.hits == 3
        server.status = 200
        clock.now += 10
        assert fresh.key("rsa-1") is not None and server.hits == 4


@pytest.mark.parametrize(
    ("status", "document", "fragment"),
    [(500, {}, "answered HTTP 500"), (200, {"no": "keys"}, "is not a JWK Set"), (200, [1, 2], "is not a JWK Set")],
    ids=["server-error", "no-keys", "not-an-object"],
)
def test_jwks_url_bad_answers_are_reported(status: int, document: Any, fragment: str) -> None:
    with jwks_server(document) as server:
        server.status = status
        with pytest.raises(KeysUnavailableError, match=fragment):
            JwksUrl(server.url, timeout=2, max_age=60).key("rsa-1")


def test_jwks_url_fetch_times_out() -> None:
    # Listening but never answering: the connection opens, the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks"
        began = time.monotonic()
        with pytest.raises(KeysUnavailableError, match=r"did not answer within 0.3 s"):
            JwksUrl(url, timeout=0.3, max_age=60).key("rsa-1")
        assert time.monotonic() - began < 3
