"""Starting an instance when its definition's timer start event is due (engine.start_scheduled).

The Schedule's run hands over its own workflow id; the instance id is derived from it, so a retried
activity, or a Schedule run retried by Temporal, starts the instance once; indexing it is idempotent
too. It starts the key's latest version, as the deploy that created the Schedule meant.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.started_instances import index_started
from bpmn.definitions import load_process, start_input
from bpmn.timer_starts import timer_starts
from store import definitions
from workflows.contracts import PROCESS_WORKFLOW, START_SCHEDULED_ACTIVITY, ProcessInput, ScheduledStart

_TIMER_STARTS = uuid.UUID("0b7c3f1e-58a4-4c1b-9d2e-7a6f5e4d3c2b")
# A deploy creates its Schedules before it commits (a Temporal that does not answer fails the deploy),
# so a timer already due fires before the definition can be read: "not found" is retried this many
# attempts (1 + 2 + 4 + 8 s of backoff) before it counts as a definition that is gone.
NOT_FOUND_ATTEMPTS = 5
TIMER_ACTOR = "timer"  # who started it, in the instance index and the audit history


class ScheduledStarts:
    def __init__(self, client: Client, session_factory: sessionmaker[Session], engine_queue: str) -> None:
        self._client = client
        self._session_factory = session_factory
        self._engine_queue = engine_queue

    @activity.defn(name=START_SCHEDULED_ACTIVITY)
    async def start_scheduled(self, inp: ScheduledStart) -> str:
        instance_id = str(uuid.uuid5(_TIMER_STARTS, inp.fired_id))
        requested_at = datetime.now(UTC)  # before the instance's own first entry, as for POST /instances
        started = await asyncio.to_thread(self._input, inp, instance_id)
        if started is None:
            return ""  # the latest version has no such timer start any more: nothing to start
        # an earlier attempt may have started it and died before indexing it
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self._client.start_workflow(
                PROCESS_WORKFLOW,
                started,
                id=instance_id,
                task_queue=self._engine_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        await asyncio.to_thread(
            index_started, self._session_factory, started, requested_at=requested_at, actor=TIMER_ACTOR,
            data={"timer": started.start_timer},
        )  # fmt: skip
        return instance_id

    def _input(self, inp: ScheduledStart, instance_id: str) -> ProcessInput | None:
        with self._session_factory() as session:
            found = definitions.get(session, key=inp.definition_key, tenant=inp.tenant)
            if found is None:
                raise ApplicationError(
                    f"definition '{inp.definition_key}' not found",
                    non_retryable=activity.info().attempt >= NOT_FOUND_ATTEMPTS,
                )
            files = definitions.files(session, key=found.key, version=found.version)
        process = load_process(files, found.key, found.hash, feel=found.feel)
        if inp.element_id not in {start.element_id for start in timer_starts(process)}:
            return None
        started = start_input(
            instance_id=instance_id, key=found.key, version=found.version, digest=found.hash, files=files,
            started_by=TIMER_ACTOR, start_timer=inp.element_id, tenant=found.tenant, feel=found.feel,
        )  # fmt: skip
        return started
