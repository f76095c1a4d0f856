"""Payload blobs: the bytes of Temporal payloads kept out of the history, by SHA-256."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.models import PayloadBlob


def put(factory: sessionmaker[Session], digest: str, data: bytes) -> None:
    """Store `data` under `digest` unless it is there already (content-addressed: same digest, same bytes)."""
    with factory() as session:
        if session.get(PayloadBlob, digest) is not None:
            return
        session.add(PayloadBlob(digest=digest, data=data, size=len(data), created_at=datetime.now(UTC)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # a concurrent writer stored the same bytes first


def get(factory: sessionmaker[Session], digest: str) -> bytes | None:
    with factory() as session:
        data: bytes | None = session.scalar(select(PayloadBlob.data).where(PayloadBlob.digest == digest))
        return data
