"""Data access for message correlation: who waits for a message, and which processes it starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.models import Definition, MessageStartEvent, MessageSubscriptionRow
from store.tenancy import scoped
from workflows.contracts import SyncTasksInput


def sync(session: Session, *, update: SyncTasksInput) -> None:
    """Apply the instance's complete set of open subscriptions. Idempotent."""
    open_ids = {s.task_id for s in update.subscriptions}
    existing = set(
        session.scalars(
            select(MessageSubscriptionRow.task_id).where(MessageSubscriptionRow.instance_id == update.instance_id)
        )
    )
    gone = existing - open_ids
    if gone:
        session.execute(delete(MessageSubscriptionRow).where(MessageSubscriptionRow.task_id.in_(gone)))
    for subscription in update.subscriptions:
        if subscription.task_id in existing:
            continue
        session.add(
            MessageSubscriptionRow(
                task_id=subscription.task_id,
                instance_id=update.instance_id,
                definition_key=update.definition_key,
                version=update.version,
                element_id=subscription.element_id,
                message_name=subscription.message_name,
                correlation_key=subscription.correlation_key,
                created_at=datetime.fromisoformat(subscription.created_at),
                tenant=update.tenant,
                kind=subscription.kind,
            )
        )


@dataclass(frozen=True)
class Waiting:
    instance_id: str
    element_id: str
    definition_key: str


def waiting(
    session: Session,
    *,
    name: str,
    correlation_key: str | None,
    instance_id: str | None = None,
    limit: int = 1000,
    tenant: str | None = None,
) -> list[Waiting]:
    """Instances with an element waiting for this message and key, oldest subscription first, each once.
    A tenant's message reaches only its own instances."""
    query = select(MessageSubscriptionRow).where(
        MessageSubscriptionRow.kind == "message", MessageSubscriptionRow.message_name == name
    )
    query = scoped(query, MessageSubscriptionRow.tenant, tenant)
    if correlation_key is None:
        query = query.where(MessageSubscriptionRow.correlation_key.is_(None))
    else:
        query = query.where(MessageSubscriptionRow.correlation_key == correlation_key)
    if instance_id is not None:
        query = query.where(MessageSubscriptionRow.instance_id == instance_id)
    query = query.order_by(MessageSubscriptionRow.created_at, MessageSubscriptionRow.task_id).limit(limit)
    found: dict[str, Waiting] = {}
    for row in session.scalars(query):
        found.setdefault(row.instance_id, Waiting(row.instance_id, row.element_id, row.definition_key))
    return list(found.values())


@dataclass(frozen=True)
class SubscriptionView:
    instance_id: str
    definition_key: str
    element_id: str
    message_name: str
    correlation_key: str | None
    created_at: datetime


def list_subscriptions(
    session: Session,
    *,
    kind: str = "message",
    name: str | None = None,
    instance_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    tenant: str | None = None,
) -> list[SubscriptionView]:
    query = scoped(select(MessageSubscriptionRow), MessageSubscriptionRow.tenant, tenant)
    query = query.where(MessageSubscriptionRow.kind == kind)
    if name is not None:
        query = query.where(MessageSubscriptionRow.message_name == name)
    if instance_id is not None:
        query = query.where(MessageSubscriptionRow.instance_id == instance_id)
    query = (
        query.order_by(MessageSubscriptionRow.created_at, MessageSubscriptionRow.task_id).limit(limit).offset(offset)
    )
    return [
        SubscriptionView(r.instance_id, r.definition_key, r.element_id, r.message_name, r.correlation_key, r.created_at)
        for r in session.scalars(query)
    ]


@dataclass(frozen=True)
class Starter:
    key: str
    version: int


def starters(session: Session, *, name: str, tenant: str | None = None) -> list[Starter]:
    """Definitions whose latest version starts on this message (as in Camunda, older versions' message
    start events are replaced by the newest one's)."""
    return latest_starters(session, MessageStartEvent.definition_id, MessageStartEvent.message_name == name, tenant)


def latest_starters(
    session: Session, definition_id: InstrumentedAttribute[int], matches: ColumnElement[bool], tenant: str | None
) -> list[Starter]:
    """Definitions whose latest version has a start event row (`definition_id`) that `matches`."""
    latest = select(Definition.key, func.max(Definition.version).label("version")).group_by(Definition.key).subquery()
    query = (
        select(Definition.key, Definition.version)
        .join(latest, (Definition.key == latest.c.key) & (Definition.version == latest.c.version))
        .join(definition_id.class_, definition_id == Definition.id)
        .where(matches)
    )
    rows = session.execute(scoped(query, Definition.tenant, tenant).order_by(Definition.key))
    return [Starter(key, version) for key, version in rows]
