"""Indexing an instance the platform started by itself (a timer start event, a signal), the way
POST /instances indexes the ones it starts: a row in the instance index and an audit entry, once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from store import audit, instances
from workflows.contracts import CallParent


class Started(Protocol):
    """What the index needs of a started instance: a ProcessInput, or a called instance's own
    CalledInstanceIndex (without the files a ProcessInput carries)."""

    @property
    def instance_id(self) -> str: ...
    @property
    def definition_key(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def business_key(self) -> str | None: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def parent(self) -> CallParent | None: ...


def index_started(
    session_factory: sessionmaker[Session],
    started: Started,
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
