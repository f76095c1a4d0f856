"""Data access for signals: which instances wait for one, and which processes it starts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.messages import Starter, latest_starters
from store.models import MessageSubscriptionRow, SignalStartEvent
from store.tenancy import scoped


def waiting_instances(
    session: Session, *, name: str, tenant: str | None = None, exclude: str | None = None
) -> list[str]:
    """Instances with an element waiting for the signal, oldest subscription first, each once. A
    tenant's signal reaches only its own instances."""
    query = select(MessageSubscriptionRow.instance_id, func.min(MessageSubscriptionRow.created_at).label("since"))
    query = query.where(MessageSubscriptionRow.kind == "signal", MessageSubscriptionRow.message_name == name)
    if exclude is not None:
        query = query.where(MessageSubscriptionRow.instance_id != exclude)
    query = scoped(query, MessageSubscriptionRow.tenant, tenant)
    query = query.group_by(MessageSubscriptionRow.instance_id).order_by("since", MessageSubscriptionRow.instance_id)
    return list(session.scalars(query))


def starters(session: Session, *, name: str, tenant: str | None = None) -> list[Starter]:
    """Definitions whose latest version starts on this signal."""
    return latest_starters(session, SignalStartEvent.definition_id, SignalStartEvent.signal_name == name, tenant)
