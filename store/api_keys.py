"""API keys, checked by digest."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ApiKey

KEY_PREFIX = "amx_"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def ensure(session: Session, *, name: str, key: str, subject: str, roles: str) -> None:
    """Register `key` under `name`, replacing the digest if the configured key changed."""
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        session.add(ApiKey(name=name, digest=digest(key), subject=subject, roles=roles, created_at=datetime.now(UTC)))
    elif row.digest != digest(key):
        row.digest = digest(key)
        row.revoked_at = None


def find(session: Session, *, key: str) -> ApiKey | None:
    row = session.scalars(select(ApiKey).where(ApiKey.digest == digest(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row
