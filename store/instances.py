"""Data access for the instance index."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from store.models import Instance
from store.tenancy import scoped, visible


def record_start(
    session: Session,
    *,
    instance_id: str,
    key: str,
    version: int,
    business_key: str | None,
    started_by: str | None,
    tenant: str | None = None,
    parent_id: str | None = None,
    parent_element_id: str | None = None,
) -> None:
    session.add(
        Instance(
            parent_id=parent_id,
            parent_element_id=parent_element_id,
            id=instance_id,
            definition_key=key,
            version=version,
            business_key=business_key,
            started_at=datetime.now(UTC),
            started_by=started_by,
            status="running",
            tenant=tenant,
        )
    )


def get(session: Session, *, instance_id: str, tenant: str | None = None) -> Instance | None:
    """The instance, if a caller of `tenant` may see it (None: every tenant's)."""
    row = session.get(Instance, instance_id)
    return row if row is not None and visible(row.tenant, tenant) else None


def oldest_running_start(session: Session) -> datetime | None:
    started = session.scalars(
        select(Instance.started_at).where(Instance.status == "running").order_by(Instance.started_at).limit(1)
    ).first()
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)  # SQLite returns naive UTC
    return started


def still_running(session: Session, *, ids: list[str]) -> list[str]:
    """Of these instances, the ones the index still has as running, in the given order."""
    found = set(session.scalars(select(Instance.id).where(Instance.id.in_(ids), Instance.status == "running")).all())
    return [instance_id for instance_id in ids if instance_id in found]


def record_closed(session: Session, *, closures: dict[str, tuple[str, datetime | None]]) -> int:
    """Copy terminal statuses seen in Temporal. Idempotent; returns how many rows changed."""
    changed = 0
    for instance_id, (status, closed_at) in closures.items():
        result = session.execute(
            update(Instance)
            .where(Instance.id == instance_id, Instance.status == "running")
            .values(status=status, closed_at=closed_at)
        )
        changed += result.rowcount or 0  # type: ignore[attr-defined]
    return changed


@dataclass(frozen=True)
class InstanceFilter:
    status: str | None = None
    definition_key: str | None = None
    version: int | None = None
    business_key: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    tenant: str | None = None  # the caller's; None spans every tenant
    parent_id: str | None = None  # the instances this one's call activities started


class BadCursor(ValueError):
    pass


def encode_cursor(row: Instance) -> str:
    # SQLite hands datetimes back without a zone: normalise so cursors compare the same everywhere
    started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
    return base64.urlsafe_b64encode(f"{started.isoformat()}|{row.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        started, instance_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(started), instance_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("cursor is not one this API returned") from None


def list_page(
    session: Session, *, where: InstanceFilter, limit: int, cursor: str | None = None
) -> tuple[list[Instance], str | None]:
    """Newest first, keyset-paginated: a page costs the same at instance 100 and 100,000."""
    query = scoped(select(Instance), Instance.tenant, where.tenant)
    if where.status:
        query = query.where(Instance.status == where.status)
    if where.definition_key:
        query = query.where(Instance.definition_key == where.definition_key)
    if where.version is not None:
        query = query.where(Instance.version == where.version)
    if where.business_key:
        query = query.where(Instance.business_key == where.business_key)
    if where.parent_id:
        query = query.where(Instance.parent_id == where.parent_id)
    if where.started_after:
        query = query.where(Instance.started_at >= where.started_after)
    if where.started_before:
        query = query.where(Instance.started_at < where.started_before)
    if cursor:
        started, instance_id = _decode_cursor(cursor)
        query = query.where(
            or_(Instance.started_at < started, and_(Instance.started_at == started, Instance.id < instance_id))
        )
    rows = list(session.scalars(query.order_by(Instance.started_at.desc(), Instance.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None
