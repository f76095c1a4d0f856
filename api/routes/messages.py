"""POST /messages: deliver a BPMN message to the instances waiting for it, or start processes with it.

A message nobody waits for and no process starts with is answered 404 (not buffered): the sender
learns at once that it went nowhere. Waiting elements are found through the subscription
projection, then each instance is asked through a workflow update that the workflow validates
against its own state, so a stale projection row can only lead to "not delivered", never to a
message delivered twice or to an element that no longer waits.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from activities.message_publish import PARALLEL_DELIVERIES, deliver_message
from api.deps import OperatorUser, OpsReader, StateDep, TemporalDep
from api.errors import responses
from api.launch import launch
from api.schemas import (
    DB_INT_MAX,
    MessageDelivered,
    MessagePublish,
    MessageReceipt,
    MessageStarted,
)
from store import audit
from store import messages as message_store
from workflows.contracts import DeliverMessageInput

router = APIRouter(tags=["messages"])


@router.post(
    "/messages",
    responses=responses(404, e404="No instance waits for the message and no process starts with it"),
)
async def publish_message(
    body: MessagePublish, user: OperatorUser, state: StateDep, temporal: TemporalDep
) -> MessageReceipt:
    """Deliver a message to every instance with an element waiting for it (intermediate catch event,
    receive task, boundary event) whose correlation key matches, one element per instance; and start an
    instance of every process whose latest version has a message start event for it."""

    def lookup() -> tuple[list[message_store.Waiting], list[message_store.Starter]]:
        with state.session_factory() as session:
            waiting = message_store.waiting(
                session, name=body.name, correlation_key=body.correlation_key, tenant=user.tenant
            )
            return waiting, message_store.starters(session, name=body.name, tenant=user.tenant)

    waiting, starters = await run_in_threadpool(lookup)
    gate = asyncio.Semaphore(PARALLEL_DELIVERIES)
    message = DeliverMessageInput(body.name, body.correlation_key, body.variables, user.subject)

    async def deliver(instance_id: str) -> MessageDelivered | None:
        async with gate:
            return await _deliver(temporal, instance_id, message)

    results = await asyncio.gather(*(deliver(w.instance_id) for w in waiting))
    delivered = [r for r in results if r is not None]
    started = []
    for starter in starters:
        launched = await launch(
            state, temporal, key=starter.key, version=starter.version, variables=body.variables,
            business_key=body.correlation_key, actor=user.subject, tenant=user.tenant, start_message=body.name,
        )  # fmt: skip
        started.append(
            MessageStarted(instance_id=launched.instance_id, definition_key=starter.key, version=starter.version)
        )
    if not delivered and not started:
        key = (
            f" with correlation key {body.correlation_key!r}"
            if body.correlation_key is not None
            else " without a correlation key"
        )
        raise HTTPException(
            404,
            detail=f"message '{body.name}'{key} reached nobody: no instance waits for it and no deployed process "
            "starts with it",
        )

    def record() -> None:
        with state.session_factory.begin() as session:
            audit.append(session, records=[audit.api_operation(
                "message.published", actor=user.subject,
                data={"name": body.name, "correlation_key": body.correlation_key,
                      "delivered": [d.instance_id for d in delivered], "started": [s.instance_id for s in started]},
                tenant=user.tenant,
            )])  # fmt: skip

    await run_in_threadpool(record)
    return MessageReceipt(name=body.name, correlation_key=body.correlation_key, delivered=delivered, started=started)


@router.get("/messages/subscriptions")
def list_subscriptions(
    user: OpsReader,
    state: StateDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    instance_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[message_store.SubscriptionView]:
    """Elements waiting for a message now, oldest first: what POST /messages would reach."""
    with state.session_factory() as session:
        rows = message_store.list_subscriptions(
            session, name=name, instance_id=instance_id, limit=limit, offset=offset, tenant=user.tenant
        )
    return rows


async def _deliver(temporal: Client, instance_id: str, message: DeliverMessageInput) -> MessageDelivered | None:
    element_id = await deliver_message(temporal, instance_id, message)
    return MessageDelivered(instance_id=instance_id, element_id=element_id) if element_id else None
