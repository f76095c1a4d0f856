"""API keys, checked by digest."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import ApiKey
from store.tenancy import scoped, visible

KEY_PREFIX = "amx_"


class NameTakenError(Exception):
    """Another key, active or revoked, has this name: names stay unique so audit trails stay readable."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def role_names(row: ApiKey) -> list[str]:
    return [role for role in row.roles.split(",") if role]


def ensure(session: Session, *, name: str, key: str, subject: str, roles: str) -> None:
    """Register `key` under `name`, replacing the digest if the configured key changed."""
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        session.add(ApiKey(name=name, digest=digest(key), subject=subject, roles=roles, created_at=datetime.now(UTC)))
    elif row.digest != digest(key):
        row.digest = digest(key)
        row.revoked_at = None


def create(
    session: Session,
    *,
    name: str,
    key: str,
    subject: str,
    roles: Iterable[str],
    groups: Iterable[str],
    tenant: str | None,
) -> ApiKey:
    """Store a new key's digest; raises NameTakenError if `name` is used."""
    if session.scalars(select(ApiKey.id).where(ApiKey.name == name)).first() is not None:
        raise NameTakenError(name)
    row = ApiKey(
        name=name,
        digest=digest(key),
        subject=subject,
        roles=",".join(sorted(set(roles))),
        groups=sorted(set(groups)),
        tenant=tenant,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    try:
        # Flush now so that a concurrent create of the same name fails here, as a NameTakenError.
        session.flush()
    except IntegrityError:
        raise NameTakenError(name) from None
    return row


def list_all(session: Session, *, include_revoked: bool = False, tenant: str | None = None) -> list[ApiKey]:
    query = scoped(select(ApiKey), ApiKey.tenant, tenant).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke(session: Session, *, key_id: int, tenant: str | None = None) -> ApiKey | None:
    """Mark the key revoked (idempotent: the first revocation time is kept); None if there is no such key
    that a caller of `tenant` may see."""
    row = session.get(ApiKey, key_id)
    if row is None or not visible(row.tenant, tenant):
        return None
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def find(session: Session, *, key: str) -> ApiKey | None:
    row = session.scalars(select(ApiKey).where(ApiKey.digest == digest(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row
