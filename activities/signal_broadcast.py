"""Broadcasting a signal: to every instance of the tenant waiting for it, and as a start to every
process whose latest version has a signal start event for it.

Used by POST /signals and, as the `engine.broadcast_signal` activity, for signals thrown by an
instance (the thrower's own catchers have it already). Waiting instances are found through the
subscription projection and each is asked through a workflow update the workflow validates against
its own state: a stale row leads to "not delivered", never to a signal caught by an element that no
longer waits. Instances started by a broadcast are named by its `origin`, so a retried activity
starts each once.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.event_starts import EventStarts
from activities.instance_updates import update_if_waiting
from store import signals as signal_store
from store.messages import Starter
from workflows.contracts import (
    BROADCAST_SIGNAL_ACTIVITY,
    DELIVER_SIGNAL_UPDATE,
    BroadcastSignalInput,
    DeliverSignalInput,
    DeliverSignalResult,
    SignalBroadcast,
    SignalDelivered,
    SignalStarted,
)

_SIGNAL_STARTS = uuid.UUID("3d6f2b8a-9c41-4e57-8a0b-6c2e1f4d7a95")
_PARALLEL_DELIVERIES = 16


class SignalBroadcaster:
    def __init__(self, client: Client, session_factory: sessionmaker[Session], engine_queue: str) -> None:
        self._client = client
        self._session_factory = session_factory
        self._starts = EventStarts(client, session_factory, engine_queue)

    @activity.defn(name=BROADCAST_SIGNAL_ACTIVITY)
    async def broadcast_signal(self, inp: BroadcastSignalInput) -> SignalBroadcast:
        return await self.broadcast(inp, actor=f"instance/{inp.instance_id}")

    async def broadcast(self, inp: BroadcastSignalInput, *, actor: str) -> SignalBroadcast:
        waiting, starters = await asyncio.to_thread(self._lookup, inp)
        gate = asyncio.Semaphore(_PARALLEL_DELIVERIES)
        signal = DeliverSignalInput(inp.name, inp.variables, actor)

        async def deliver(instance_id: str) -> SignalDelivered | None:
            async with gate:
                return await self._deliver(instance_id, signal)

        delivered = [d for d in await asyncio.gather(*(deliver(i) for i in waiting)) if d is not None]
        started = [await self._start(inp, starter, actor) for starter in starters]
        return SignalBroadcast(delivered=delivered, started=[s for s in started if s is not None])

    def _lookup(self, inp: BroadcastSignalInput) -> tuple[list[str], list[Starter]]:
        with self._session_factory() as session:
            waiting = signal_store.waiting_instances(session, name=inp.name, tenant=inp.tenant, exclude=inp.instance_id)
            return waiting, signal_store.starters(session, name=inp.name, tenant=inp.tenant)

    async def _deliver(self, instance_id: str, signal: DeliverSignalInput) -> SignalDelivered | None:
        result = await update_if_waiting(self._client, instance_id, DELIVER_SIGNAL_UPDATE, signal, DeliverSignalResult)
        return SignalDelivered(instance_id=instance_id, element_ids=result.element_ids) if result else None

    async def _start(self, inp: BroadcastSignalInput, starter: Starter, actor: str) -> SignalStarted | None:
        instance_id = str(uuid.uuid5(_SIGNAL_STARTS, f"{inp.origin}\x00{starter.key}"))
        variables = inp.variables if isinstance(inp.variables, dict) else {}
        started = await self._starts.start(
            starter, instance_id=instance_id, variables=variables, actor=actor, start_signal=inp.name
        )
        return SignalStarted(instance_id, starter.key, starter.version) if started else None
