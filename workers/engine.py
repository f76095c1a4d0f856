"""The engine pool: runs ProcessWorkflow and its light local activities (the inbox projection)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

import temporalio.converter
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.called_instances import CalledInstances
from activities.message_publish import MessagePublisher
from activities.projection import ProjectionActivities
from activities.scheduled_start import ScheduledStarts
from activities.signal_broadcast import SignalBroadcaster
from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from store.db import make_engine, make_session_factory, migrate
from workflows.contracts import ENGINE_TASK_QUEUE
from workflows.process import ProcessWorkflow
from workflows.timer_start import TimerStartWorkflow

# SpiffWorkflow (and our adapter around it) must be imported once, outside the sandbox: inside it
# every Task() trips on uuid4 and re-importing it per run costs tens of ms. Determinism is kept
# by bpmn.determinism instead. lxml is a C extension that the sandbox cannot re-import anyway.
PASSTHROUGH_MODULES = (
    "SpiffWorkflow",
    "bpmn",
    "workflows.contracts",
    "workflows.process_engine",
    "lxml",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


async def replay_failures(
    histories: Iterable[WorkflowHistory], data_converter: DataConverter | None = None
) -> dict[str, str]:
    """Replay ProcessWorkflow histories against this code, as a worker would: run id → what diverged.
    `data_converter`: the platform's (aimatrix/temporal.py) where histories hold large payloads by reference.

    Empty means every history replays deterministically (the tests, and `make chaos`, require that).
    """
    converter = data_converter or temporalio.converter.default()
    replayer = Replayer(workflows=[ProcessWorkflow], workflow_runner=workflow_runner(), data_converter=converter)

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    return {run_id: str(err) for run_id, err in results.replay_failures.items()}


def build_worker(
    client: Client, session_factory: sessionmaker[Session], *, task_queue: str = ENGINE_TASK_QUEUE
) -> Worker:
    projection = ProjectionActivities(session_factory)
    # the engine queue's name, so the instances a timer start event's schedule starts run here too
    starts = ScheduledStarts(client, session_factory, task_queue)
    broadcaster = SignalBroadcaster(client, session_factory, task_queue)
    publisher = MessagePublisher(client, session_factory, task_queue)
    calls = CalledInstances(session_factory)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ProcessWorkflow, TimerStartWorkflow],
        activities=[
            projection.sync_tasks,
            projection.write_audit,
            starts.start_scheduled,
            broadcaster.broadcast_signal,
            publisher.publish,
            calls.prepare_call,
            calls.index_called,
        ],
        workflow_runner=workflow_runner(),
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    client = await connect(settings)
    worker = build_worker(client, make_session_factory(engine), task_queue=settings.engine_task_queue)
    logging.info("engine worker polling %s on %s", settings.engine_task_queue, settings.temporal_address)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
