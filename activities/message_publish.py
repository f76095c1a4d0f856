"""Sending a BPMN message from an instance (`message.publish`: send tasks, message throw and end
events): delivered like POST /messages, to every instance with an element waiting for its name and
correlation key (one element each), and as a start to every process whose latest version has a
message start event for it.

A message that reaches nobody fails the attempt (retryable): the receiver may not be waiting yet, and
the retries give it time; once they are spent the element has an incident an operator can retry.
Instances it starts are named by the activity and the process key, so a retried attempt starts each once.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.event_starts import EventStarts
from activities.instance_updates import update_if_waiting
from bpmn.runtime import check_variables
from store import messages as message_store
from workflows.contracts import (
    DELIVER_MESSAGE_UPDATE,
    MESSAGE_PUBLISH_ACTIVITY,
    DeliverMessageInput,
    DeliverMessageResult,
    ServiceTaskInput,
)

_MESSAGE_STARTS = uuid.UUID("8e1d4c7b-2a5f-4b93-9e06-5d7c3a1b8f24")
PARALLEL_DELIVERIES = 16
NOT_DELIVERED = "MessageNotDelivered"


async def deliver_message(client: Client, instance_id: str, message: DeliverMessageInput) -> str | None:
    """Hand the message to the instance: the element that got it, or None when it no longer waits."""
    result = await update_if_waiting(client, instance_id, DELIVER_MESSAGE_UPDATE, message, DeliverMessageResult)
    return result.element_id if result is not None else None


class MessagePublisher:
    def __init__(self, client: Client, session_factory: sessionmaker[Session], engine_queue: str) -> None:
        self._client = client
        self._session_factory = session_factory
        self._starts = EventStarts(client, session_factory, engine_queue)

    @activity.defn(name=MESSAGE_PUBLISH_ACTIVITY)
    async def publish(self, inp: ServiceTaskInput) -> dict[str, Any]:
        name, key, variables = _message(inp.params)
        actor = f"instance/{inp.instance_id}"

        def lookup() -> tuple[list[message_store.Waiting], list[message_store.Starter]]:
            with self._session_factory() as session:
                waiting = message_store.waiting(session, name=name, correlation_key=key, tenant=inp.tenant)
                return waiting, message_store.starters(session, name=name, tenant=inp.tenant)

        waiting, starters = await asyncio.to_thread(lookup)
        gate = asyncio.Semaphore(PARALLEL_DELIVERIES)
        message = DeliverMessageInput(name, key, variables, actor)

        async def deliver(instance_id: str) -> dict[str, str] | None:
            async with gate:
                element_id = await deliver_message(self._client, instance_id, message)
            return {"instance_id": instance_id, "element_id": element_id} if element_id else None

        delivered = [d for d in await asyncio.gather(*(deliver(w.instance_id) for w in waiting)) if d]
        info = activity.info()
        started = []
        for starter in starters:
            instance_id = str(uuid.uuid5(_MESSAGE_STARTS, f"{info.workflow_id}/{info.activity_id}\x00{starter.key}"))
            if await self._starts.start(
                starter, instance_id=instance_id, variables=variables, actor=actor, business_key=key,
                start_message=name,
            ):  # fmt: skip
                started.append({"instance_id": instance_id, "definition_key": starter.key, "version": starter.version})
        if not delivered and not started:
            shown = f"correlation key {key!r}" if key is not None else "no correlation key"
            raise ApplicationError(
                f"message '{name}' with {shown} reached nobody: no instance waits for it and no deployed "
                "process starts with it",
                type=NOT_DELIVERED,
            )
        return {"message": name, "correlation_key": key, "delivered": delivered, "started": started}


def _message(params: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """The message's name, key (as text, as keys are compared) and variables; a model's mistake is not retried."""
    name, key, variables = params.get("name"), params.get("correlation_key"), params.get("variables")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise ApplicationError(
            f"the message's variables must be a map of names to values, not {type(variables).__name__}",
            non_retryable=True,
        )
    try:
        check_variables(variables)
    except ValueError as err:
        raise ApplicationError(f"the message's variables: {err}", non_retryable=True) from None
    if key is not None and not isinstance(key, bool | int | float | str):
        raise ApplicationError(
            f"a correlation key must be a string or a number, not {type(key).__name__}", non_retryable=True
        )
    return str(name), None if key is None else str(key), variables
