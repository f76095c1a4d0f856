"""Data access for the inbox projection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import HumanTask
from store.tenancy import scoped, visible
from workflows.contracts import SyncTasksInput


def sync(session: Session, *, update: SyncTasksInput) -> None:
    """Apply what the workflow says is open and closed. Idempotent: activities may run twice."""
    existing = {
        row.id: row for row in session.scalars(select(HumanTask).where(HumanTask.instance_id == update.instance_id))
    }
    for task in update.open_tasks:
        if task.id in existing:
            continue
        row = HumanTask(
            id=task.id,
            instance_id=update.instance_id,
            definition_key=update.definition_key,
            version=update.version,
            element_id=task.element_id,
            element_type=task.element_type,
            name=task.name,
            lane=task.lane,
            documentation=task.documentation,
            state="open",
            created_at=datetime.fromisoformat(task.created_at),
            tenant=update.tenant,
        )
        session.add(row)
        existing[task.id] = row
    for closed in update.closed_tasks:
        closed_row = existing.get(closed.id)
        if closed_row is None or closed_row.state != "open":
            continue
        closed_row.state = closed.outcome
        closed_row.closed_by = closed.actor
        closed_row.closed_at = datetime.fromisoformat(closed.closed_at) if closed.closed_at else None
    # Every sync carries the complete open set: a row it does not name was written by a workflow
    # task that was lost (its worker died) and that the re-run never opened.
    still_open = {task.id for task in update.open_tasks}
    for row in existing.values():
        if row.state == "open" and row.id not in still_open:
            row.state = "cancelled"


@dataclass(frozen=True)
class TaskRow:
    id: str
    instance_id: str
    definition_key: str
    version: int
    element_id: str
    element_type: str
    name: str
    lane: str | None
    state: str
    created_at: datetime


def _row(task: HumanTask) -> TaskRow:
    return TaskRow(
        task.id, task.instance_id, task.definition_key, task.version, task.element_id, task.element_type,
        task.name, task.lane, task.state, task.created_at,
    )  # fmt: skip


def list_open(
    session: Session, *, instance_id: str | None = None, limit: int = 100, offset: int = 0, tenant: str | None = None
) -> list[TaskRow]:
    query = scoped(select(HumanTask).where(HumanTask.state == "open"), HumanTask.tenant, tenant)
    if instance_id:
        query = query.where(HumanTask.instance_id == instance_id)
    query = query.order_by(HumanTask.created_at, HumanTask.id).limit(limit).offset(offset)
    return [_row(task) for task in session.scalars(query)]


def get(session: Session, *, task_id: str, tenant: str | None = None) -> TaskRow | None:
    task = session.get(HumanTask, task_id)
    return _row(task) if task is not None and visible(task.tenant, tenant) else None
