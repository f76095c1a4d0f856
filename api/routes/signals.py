"""POST /signals: broadcast a BPMN signal to every instance waiting for it, and start the processes
it starts (activities/signal_broadcast.py, shared with signals thrown by instances).

Unlike a message, a signal that reaches nobody is no error (200 with empty lists): a broadcast is
for whoever listens now, and is not kept for later.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from activities.signal_broadcast import SignalBroadcaster
from api.deps import OperatorUser, OpsReader, StateDep, TemporalDep
from api.schemas import DB_INT_MAX, MessageStarted, SignalBroadcastRequest, SignalDeliveredTo, SignalReceipt
from store import audit
from store import messages as message_store
from workflows.contracts import BroadcastSignalInput

router = APIRouter(tags=["signals"])


@router.post("/signals")
async def broadcast_signal(
    body: SignalBroadcastRequest, user: OperatorUser, state: StateDep, temporal: TemporalDep
) -> SignalReceipt:
    """Deliver a signal to every element waiting for it (intermediate catch event, boundary event,
    event-based gateway) in every instance of the caller's tenant, and start an instance of every
    process whose latest version has a signal start event for it."""
    broadcaster = SignalBroadcaster(temporal, state.session_factory, state.settings.engine_task_queue)
    request = BroadcastSignalInput(body.name, dict(body.variables), origin=uuid.uuid4().hex, tenant=user.tenant)
    sent = await broadcaster.broadcast(request, actor=user.subject)

    def record() -> None:
        with state.session_factory.begin() as session:
            audit.append(session, records=[audit.api_operation(
                "signal.broadcast", actor=user.subject,
                data={"name": body.name, "variables": body.variables,
                      "delivered": {d.instance_id: d.element_ids for d in sent.delivered},
                      "started": [s.instance_id for s in sent.started]},
                tenant=user.tenant,
            )])  # fmt: skip

    await run_in_threadpool(record)
    return SignalReceipt(
        name=body.name,
        delivered=[SignalDeliveredTo(instance_id=d.instance_id, element_ids=d.element_ids) for d in sent.delivered],
        started=[
            MessageStarted(instance_id=s.instance_id, definition_key=s.definition_key, version=s.version)
            for s in sent.started
        ],
    )


@router.get("/signals/subscriptions")
def list_signal_subscriptions(
    user: OpsReader,
    state: StateDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    instance_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[message_store.SubscriptionView]:
    """Elements waiting for a signal now, oldest first: what POST /signals would reach."""
    with state.session_factory() as session:
        return message_store.list_subscriptions(
            session, kind="signal", name=name, instance_id=instance_id, limit=limit, offset=offset,
            tenant=user.tenant,
        )  # fmt: skip
