"""Data access for the inbox projection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Exists, delete, exists, false, nulls_last, or_, select
from sqlalchemy.orm import Session

from store.db import as_utc
from store.models import HumanTask, HumanTaskCandidate
from store.tenancy import scoped, visible
from workflows.contracts import OpenTask, SyncTasksInput

STATES = ("open", "completed", "cancelled")


def sync(session: Session, *, update: SyncTasksInput) -> None:
    """Apply what the workflow says is open and closed. Idempotent: activities may run twice."""
    existing = {
        row.id: row for row in session.scalars(select(HumanTask).where(HumanTask.instance_id == update.instance_id))
    }
    for task in update.open_tasks:
        row = existing.get(task.id)
        if row is None:
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
        if row.state == "open":
            _assign(session, row, task)
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


def _assign(session: Session, row: HumanTask, task: OpenTask) -> None:
    """Bring the row's assignment up to the workflow's (claims, reassignments, escalations)."""
    row.assignee = task.assignee
    row.priority = task.priority
    row.due_at = as_utc(datetime.fromisoformat(task.due_at)) if task.due_at else None
    row.form = task.form
    row.ui_form = task.ui_form
    row.escalated = task.escalated
    wanted = {("group", g) for g in task.candidate_groups} | {("user", u) for u in task.candidate_users}
    current = {
        (c.kind, c.name)
        for c in session.scalars(select(HumanTaskCandidate).where(HumanTaskCandidate.task_id == row.id))
    }
    for kind, name in current - wanted:
        session.execute(
            delete(HumanTaskCandidate).where(
                HumanTaskCandidate.task_id == row.id, HumanTaskCandidate.kind == kind, HumanTaskCandidate.name == name
            )
        )
    for kind, name in sorted(wanted - current):
        session.add(HumanTaskCandidate(task_id=row.id, kind=kind, name=name))


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
    documentation: str | None = None
    assignee: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    priority: int = 50
    due_at: datetime | None = None
    form: str | None = None
    ui_form: str | None = None
    escalated: bool = False
    closed_by: str | None = None
    closed_at: datetime | None = None


def _rows(session: Session, tasks: list[HumanTask]) -> list[TaskRow]:
    candidates: dict[str, list[HumanTaskCandidate]] = {}
    if tasks:
        query = select(HumanTaskCandidate).where(HumanTaskCandidate.task_id.in_([t.id for t in tasks]))
        for candidate in session.scalars(query.order_by(HumanTaskCandidate.name)):
            candidates.setdefault(candidate.task_id, []).append(candidate)
    return [
        TaskRow(
            id=t.id,
            instance_id=t.instance_id,
            definition_key=t.definition_key,
            version=t.version,
            element_id=t.element_id,
            element_type=t.element_type,
            name=t.name,
            lane=t.lane,
            state=t.state,
            created_at=as_utc(t.created_at),
            documentation=t.documentation,
            assignee=t.assignee,
            candidate_groups=[c.name for c in candidates.get(t.id, []) if c.kind == "group"],
            candidate_users=[c.name for c in candidates.get(t.id, []) if c.kind == "user"],
            priority=t.priority,
            due_at=as_utc(t.due_at) if t.due_at else None,
            form=t.form,
            ui_form=t.ui_form,
            escalated=t.escalated,
            closed_by=t.closed_by,
            closed_at=as_utc(t.closed_at) if t.closed_at else None,
        )
        for t in tasks
    ]


@dataclass(frozen=True)
class Viewer:
    """Whose inbox: `None` in list() lists every task of the tenant (operators)."""

    subject: str
    groups: frozenset[str]


@dataclass(frozen=True)
class TaskFilter:
    state: str | None = "open"  # None: every state
    instance_id: str | None = None
    candidate_group: str | None = None
    assignee: str | None = None
    process: str | None = None
    due_before: datetime | None = None


def _candidate(kind: str, names: list[str] | frozenset[str]) -> Exists:
    return exists().where(
        HumanTaskCandidate.task_id == HumanTask.id, HumanTaskCandidate.kind == kind, HumanTaskCandidate.name.in_(names)
    )


def list_tasks(
    session: Session,
    *,
    viewer: Viewer | None,
    filters: TaskFilter,
    limit: int = 100,
    offset: int = 0,
    tenant: str | None = None,
) -> list[TaskRow]:
    """Tasks by priority (highest first), then due date (soonest first, none last), then age.

    A viewer sees what is assigned to them, and what is unassigned and open to them: naming them
    or one of their groups, or naming no one (a task any approver may take).
    """
    query = scoped(select(HumanTask), HumanTask.tenant, tenant)
    if filters.state is not None:
        query = query.where(HumanTask.state == filters.state)
    if viewer is not None:
        anyone = ~exists().where(HumanTaskCandidate.task_id == HumanTask.id)
        query = query.where(
            or_(
                HumanTask.assignee == viewer.subject,
                HumanTask.closed_by == viewer.subject,
                HumanTask.assignee.is_(None)
                & or_(
                    anyone,
                    _candidate("user", [viewer.subject]),
                    _candidate("group", viewer.groups) if viewer.groups else false(),
                ),
            )
        )
    if filters.instance_id:
        query = query.where(HumanTask.instance_id == filters.instance_id)
    if filters.candidate_group:
        query = query.where(_candidate("group", [filters.candidate_group]))
    if filters.assignee:
        query = query.where(HumanTask.assignee == filters.assignee)
    if filters.process:
        query = query.where(HumanTask.definition_key == filters.process)
    if filters.due_before is not None:
        query = query.where(HumanTask.due_at < as_utc(filters.due_before))
    query = query.order_by(
        HumanTask.priority.desc(), nulls_last(HumanTask.due_at.asc()), HumanTask.created_at, HumanTask.id
    )
    return _rows(session, list(session.scalars(query.limit(limit).offset(offset))))


def list_open(
    session: Session, *, instance_id: str | None = None, limit: int = 100, offset: int = 0, tenant: str | None = None
) -> list[TaskRow]:
    return list_tasks(
        session, viewer=None, filters=TaskFilter(instance_id=instance_id), limit=limit, offset=offset, tenant=tenant
    )


def get(session: Session, *, task_id: str, tenant: str | None = None) -> TaskRow | None:
    task = session.get(HumanTask, task_id)
    return _rows(session, [task])[0] if task is not None and visible(task.tenant, tenant) else None
