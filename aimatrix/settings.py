"""One settings object, read from the environment (and `.env`), shared by every process."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.contracts import ENGINE_TASK_QUEUE

# Bearer tokens are checked against the provider's public keys (JWKS), so only asymmetric algorithms
# make sense: an HMAC algorithm would turn a published public key into a signing secret.
OIDC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".aimatrix"), alias="AIMATRIX_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    temporal_address: str = Field(default="127.0.0.1:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_tls: bool = Field(default=False, alias="TEMPORAL_TLS")
    temporal_tls_cert: Path | None = Field(default=None, alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: Path | None = Field(default=None, alias="TEMPORAL_TLS_KEY")
    temporal_api_key: str | None = Field(default=None, alias="TEMPORAL_API_KEY")
    # Lets several platforms share one Temporal namespace (or a test run its own engine pool).
    engine_task_queue: str = Field(default=ENGINE_TASK_QUEUE, alias="AIMATRIX_ENGINE_TASK_QUEUE")
    # How often the API mirrors instance closures from Temporal's visibility into GET /instances.
    status_sync_seconds: float = Field(default=1.0, gt=0, alias="AIMATRIX_STATUS_SYNC_SECONDS")
    api_key: str | None = Field(default=None, alias="AIMATRIX_API_KEY")
    api_host: str = Field(default="127.0.0.1", alias="AIMATRIX_API_HOST")
    api_port: int = Field(default=8000, alias="AIMATRIX_API_PORT")
    # Comma-separated worker pools `aimatrix run` starts (empty: all); a smaller set keeps a small machine usable.
    pools: str = Field(default="", alias="AIMATRIX_POOLS")
    # Events one run of an instance's history may reach before it continues as new (None: 8,000, which
    # keeps every run under Temporal's 10,240-event warning); smaller values make runs shorter.
    history_limit: int | None = Field(default=None, ge=200, le=40_000, alias="AIMATRIX_HISTORY_LIMIT")
    # Payloads larger than this many bytes are kept in the database, the history holding their digest
    # (aimatrix/claim_check.py): Temporal refuses payloads over 2 MB.
    payload_offload_bytes: int = Field(
        default=256 * 1024, ge=1024, le=1_500_000, alias="AIMATRIX_PAYLOAD_OFFLOAD_BYTES"
    )
    # Upload limits: lxml's own limits are far above what a process model needs.
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, alias="AIMATRIX_MAX_UPLOAD_BYTES")
    max_xml_elements: int = Field(default=50_000, alias="AIMATRIX_MAX_XML_ELEMENTS")
    max_xml_depth: int = Field(default=64, alias="AIMATRIX_MAX_XML_DEPTH")
    # OpenID Connect bearer tokens (JWT), on once an issuer is set; API keys work either way.
    oidc_issuer: str | None = Field(default=None, alias="AIMATRIX_OIDC_ISSUER")
    oidc_audience: str | None = Field(default=None, alias="AIMATRIX_OIDC_AUDIENCE")
    oidc_jwks_url: str | None = Field(default=None, alias="AIMATRIX_OIDC_JWKS_URL")
    oidc_jwks_file: Path | None = Field(default=None, alias="AIMATRIX_OIDC_JWKS_FILE")
    # Comma-separated; read through `oidc_algorithm_names`.
    oidc_algorithms: str = Field(default="RS256,ES256", alias="AIMATRIX_OIDC_ALGORITHMS")
    oidc_subject_claim: str = Field(default="sub", min_length=1, alias="AIMATRIX_OIDC_SUBJECT_CLAIM")
    oidc_roles_claim: str = Field(default="roles", min_length=1, alias="AIMATRIX_OIDC_ROLES_CLAIM")
    oidc_groups_claim: str = Field(default="groups", min_length=1, alias="AIMATRIX_OIDC_GROUPS_CLAIM")
    # A token without this claim is platform-wide, like an API key without a tenant.
    oidc_tenant_claim: str = Field(default="tenant", min_length=1, alias="AIMATRIX_OIDC_TENANT_CLAIM")
    # Clock skew between the provider and this host; small, so an expired token stays refused.
    oidc_leeway_seconds: float = Field(default=30, ge=0, le=300, alias="AIMATRIX_OIDC_LEEWAY_SECONDS")
    oidc_jwks_timeout_seconds: float = Field(default=5, gt=0, le=60, alias="AIMATRIX_OIDC_JWKS_TIMEOUT_SECONDS")
    oidc_jwks_cache_seconds: float = Field(default=300, gt=0, alias="AIMATRIX_OIDC_JWKS_CACHE_SECONDS")

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, value: str) -> str:
        names = _split(value)
        if not names:
            raise ValueError("AIMATRIX_OIDC_ALGORITHMS needs at least one algorithm")
        refused = [alg for alg in names if alg not in OIDC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"AIMATRIX_OIDC_ALGORITHMS: {', '.join(refused)} not accepted; "
                f"use asymmetric ones: {', '.join(sorted(OIDC_ALGORITHMS))}"
            )
        return ",".join(names)

    @property
    def oidc_algorithm_names(self) -> tuple[str, ...]:
        return _split(self.oidc_algorithms)

    @model_validator(mode="after")
    def _oidc_complete(self) -> Self:
        # A half-configured provider would either accept tokens meant for another audience or refuse
        # every token at run time: refuse to start instead.
        if not (self.oidc_issuer or self.oidc_audience or self.oidc_jwks_url or self.oidc_jwks_file):
            return self
        missing = [
            name
            for name, value in (
                ("AIMATRIX_OIDC_ISSUER", self.oidc_issuer),
                ("AIMATRIX_OIDC_AUDIENCE", self.oidc_audience),
            )
            if not value
        ]
        if not (self.oidc_jwks_url or self.oidc_jwks_file):
            missing.append("(AIMATRIX_OIDC_JWKS_URL or AIMATRIX_OIDC_JWKS_FILE)")
        if missing:
            raise ValueError(f"OIDC is half configured: set {' and '.join(missing)}")
        if self.oidc_jwks_url and self.oidc_jwks_file:
            raise ValueError("OIDC takes one of AIMATRIX_OIDC_JWKS_URL and AIMATRIX_OIDC_JWKS_FILE, not both")
        if self.oidc_jwks_url:
            _check_jwks_url(self.oidc_jwks_url)
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aimatrix.db').resolve()}"


def _split(names: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in names.split(",") if part.strip())


def _check_jwks_url(url: str) -> None:
    # The keys decide who is admin: fetching them over plain HTTP would let anyone on the path swap them.
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ValueError(f"AIMATRIX_OIDC_JWKS_URL must be an https:// URL (http:// only on loopback), not {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
