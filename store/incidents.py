"""Data access for the incident projection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import IncidentRow
from store.tenancy import scoped, visible
from workflows.contracts import SyncTasksInput


def sync(session: Session, *, update: SyncTasksInput) -> None:
    """Apply the instance's complete set of open incidents. Idempotent."""
    existing = {
        row.id: row for row in session.scalars(select(IncidentRow).where(IncidentRow.instance_id == update.instance_id))
    }
    for incident in update.incidents:
        if incident.id in existing:
            continue
        session.add(
            IncidentRow(
                id=incident.id,
                instance_id=update.instance_id,
                definition_key=update.definition_key,
                version=update.version,
                task_id=incident.task_id,
                element_id=incident.element_id,
                message=incident.message,
                error_type=incident.error_type,
                state="open",
                created_at=datetime.fromisoformat(incident.created_at),
                tenant=update.tenant,
            )
        )
    still_open = {incident.id for incident in update.incidents}
    for row in existing.values():
        if row.state == "open" and row.id not in still_open:
            row.state = "resolved"
            row.resolved_at = datetime.now(UTC)


@dataclass(frozen=True)
class IncidentView:
    id: str
    instance_id: str
    definition_key: str
    version: int
    element_id: str
    message: str
    error_type: str | None
    state: str
    created_at: datetime
    resolved_at: datetime | None
    tenant: str | None = None


def _view(row: IncidentRow) -> IncidentView:
    return IncidentView(
        row.id, row.instance_id, row.definition_key, row.version, row.element_id, row.message, row.error_type,
        row.state, row.created_at, row.resolved_at, row.tenant,
    )  # fmt: skip


def list_incidents(
    session: Session,
    *,
    instance_id: str | None = None,
    state: str | None = "open",
    limit: int = 100,
    offset: int = 0,
    tenant: str | None = None,
) -> list[IncidentView]:
    query = scoped(select(IncidentRow), IncidentRow.tenant, tenant)
    if instance_id:
        query = query.where(IncidentRow.instance_id == instance_id)
    if state:
        query = query.where(IncidentRow.state == state)
    query = query.order_by(IncidentRow.created_at, IncidentRow.id).limit(limit).offset(offset)
    return [_view(row) for row in session.scalars(query)]


def get(session: Session, *, incident_id: str, tenant: str | None = None) -> IncidentView | None:
    row = session.get(IncidentRow, incident_id)
    return _view(row) if row is not None and visible(row.tenant, tenant) else None
