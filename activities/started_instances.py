"""Indexing an instance the platform started by itself (a timer start event, a signal), the way
POST /instances indexes the ones it starts: a row in the instance index and an audit entry, once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store import audit, instances
from workflows.contracts import ProcessInput


def index_started(
    session_factory: sessionmaker[Session],
    started: ProcessInput,
    *,
    requested_at: datetime,
    actor: str,
    data: dict[str, Any],
) -> None:
    """Idempotent: an activity retried after indexing it (or a concurrent attempt) adds nothing.
    A called instance (`started.parent`) names its caller."""
    parent = started.parent
    with session_factory.begin() as session:
        if instances.get(session, instance_id=started.instance_id) is not None:
            return
        instances.record_start(
            session, instance_id=started.instance_id, key=started.definition_key, version=started.version,
            business_key=started.business_key, started_by=actor, tenant=started.tenant,
            parent_id=parent.instance_id if parent else None, parent_element_id=parent.element_id if parent else None,
        )  # fmt: skip
        audit.append(session, records=[audit.api_operation(
            "instance.start_requested", actor=actor, instance_id=started.instance_id,
            definition_key=started.definition_key, data={"version": started.version, **data}, at=requested_at,
            tenant=started.tenant,
        )])  # fmt: skip
