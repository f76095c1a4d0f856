"""Data access for the instance index."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from store.models import Instance


def record_start(
    session: Session,
    *,
    instance_id: str,
    key: str,
    version: int,
    business_key: str | None,
    started_by: str | None,
) -> None:
    session.add(
        Instance(
            id=instance_id,
            definition_key=key,
            version=version,
            business_key=business_key,
            started_at=datetime.now(UTC),
            started_by=started_by,
        )
    )


def get(session: Session, *, instance_id: str) -> Instance | None:
    return session.get(Instance, instance_id)
