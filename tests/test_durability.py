"""Durability: SIGKILL the engine worker again and again while instances are in flight.

The engine worker runs as a separate OS process (the real `workers.engine.build_worker`, on a task
queue of its own so that no in-process engine worker of the test session can help it out) that
writes the same inbox projection database as the test. Sixty instances of a process with a service
task before and after a user task are started; the worker is killed with SIGKILL and restarted
several times while they run. Meanwhile a "user" completes the user tasks it sees in the inbox
projection, retrying through the outages, half of them only after the last kill, so their task ids
must survive every restart.

Every instance must complete exactly once with the right data: one inbox row per instance whose id
never changed, one successful `complete_task` update, one request per service task at the HTTP
server (the connector worker, which runs the HTTP calls, is never killed: its activities run
exactly once here; a killed connector could legitimately run one twice, which the Idempotency-Key
header lets the receiver detect) and every history replays without non-determinism.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from aimatrix.settings import Settings
from bpmn.definitions import start_input, validate_upload
from store.models import HumanTask
from tests.helpers import DATA, http_server
from workers.engine import replay_failures
from workflows.contracts import (
    COMPLETE_TASK_UPDATE,
    PROCESS_WORKFLOW,
    STATE_QUERY,
    TASK_NOT_OPEN,
    CompleteTaskInput,
    CompleteTaskResult,
    ProcessResult,
    ProcessState,
)

INSTANCES = 60
KILLS = 6
REPO = Path(__file__).parent.parent
ELEMENTS = ["start", "compute_total", "reserve", "approve", "summarise", "notify", "end"]

# The engine worker process: the production build_worker, polling the test's own task queue.
# It prints once it polls, so the test knows that a kill hits a live worker.
_ENGINE_PROCESS = """
import asyncio, sys
from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from store.db import make_engine, make_session_factory
from workers.engine import build_worker

async def main():
    settings = get_settings()
    client = await connect(settings)
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    async with build_worker(client, sessions, task_queue=sys.argv[1]):
        print("polling", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


class EngineProcess:
    """`python -c _ENGINE_PROCESS`, started, SIGKILLed and restarted by the test."""

    def __init__(self, env: dict[str, str], task_queue: str, logs: Path) -> None:
        self._env, self._queue, self._logs = env, task_queue, logs
        self._proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self.generation = 0
        self.kills = 0

    def _spawn(self) -> Path:
        assert self._proc is None
        self.generation += 1
        stdout = self._logs / f"engine-{self.generation}.out"
        self._files = [stdout.open("wb"), (self._logs / f"engine-{self.generation}.err").open("wb")]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _ENGINE_PROCESS, self._queue],
            cwd=REPO, env=self._env, stdout=self._files[0], stderr=self._files[1],
        )  # fmt: skip
        return stdout

    async def start(self) -> None:
        stdout = self._spawn()
        assert self._proc is not None
        deadline = asyncio.get_running_loop().time() + 60
        while b"polling" not in stdout.read_bytes():
            if self._proc.poll() is not None or asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"engine worker {self.generation} did not start:\n{self.stderr_tail()}")
            await asyncio.sleep(0.05)

    async def kill(self, *, chaos: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.kills += chaos
        await asyncio.to_thread(proc.wait)
        for file in self._files:
            file.close()
        self._files = []

    def stderr_tail(self) -> str:
        err = self._logs / f"engine-{self.generation}.err"
        return err.read_text(errors="replace")[-4000:] if err.exists() else ""


def _expected(i: int, base_url: str) -> dict[str, Any]:
    price, quantity = 10 + i, 1 + i % 5
    return {
        "start": {"order": i, "price": price, "quantity": quantity, "base_url": base_url},
        "complete": {"approved": i % 4 != 0, "comment": f"checked {i}"},
        "actor": f"user-{i}",
        "total": price * quantity,
    }


async def _histories(client: Client, ids: list[str]) -> AsyncIterator[WorkflowHistory]:
    for instance_id in ids:
        yield await client.get_workflow_handle(instance_id).fetch_history()


async def _diagnose(client: Client, ids: list[str], users: list[asyncio.Task[None]]) -> str:
    """What each unfinished instance is waiting for, for the failure message."""
    lines = []
    for i, (instance_id, user_task) in enumerate(zip(ids, users, strict=True)):
        handle = client.get_workflow_handle(instance_id)
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            continue
        history = await handle.fetch_history()
        tail = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events[-8:]]
        try:
            async with asyncio.timeout(5):
                state = await handle.query(STATE_QUERY, result_type=ProcessState)
            view = f"active={state.active} open={[t.id for t in state.open_tasks]}"
        except (TimeoutError, RPCError) as err:
            view = f"no answer to the state query ({type(err).__name__})"
        pending = [a.activity_type.name for a in description.raw_description.pending_activities]
        lines.append(
            f"instance {i} {instance_id}: user done={user_task.done()} {view} pending={pending} history tail={tail}"
        )
    return "\n".join(lines[:10]) + f"\n({len(lines)} unfinished)"


async def test_engine_worker_killed_repeatedly_loses_nothing(
    client: Client, settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path, workers: None
) -> None:
    """`workers` runs the connector pool in this process for the whole session (never killed)."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"durability seed {seed}")
    task_queue = f"engine-durability-{uuid.uuid4().hex[:8]}"
    [definition] = validate_upload({"durability.bpmn": (DATA / "durability.bpmn").read_bytes()})

    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "AIMATRIX_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.resolved_database_url,
    }
    engine = EngineProcess(env, task_queue, tmp_path)

    ids = [str(uuid.uuid4()) for _ in range(INSTANCES)]
    index = {instance_id: i for i, instance_id in enumerate(ids)}
    seen: dict[str, str] = {}  # instance → the id of the user task the inbox showed first
    changed: list[str] = []  # every inbox row that contradicts `seen`
    appeared: dict[str, asyncio.Event] = {instance_id: asyncio.Event() for instance_id in ids}
    chaos_over = asyncio.Event()
    retries: Counter[str] = Counter()
    refused: list[str] = []  # completions refused as "not open" for a task the inbox showed open
    timeline: list[str] = []
    started = asyncio.get_running_loop().time()

    def _clock() -> float:
        return asyncio.get_running_loop().time() - started

    def inbox_rows() -> list[tuple[str, str, str, str | None]]:
        with session_factory() as session:
            rows = session.scalars(select(HumanTask).where(HumanTask.instance_id.in_(ids)))
            return [(r.instance_id, r.id, r.state, r.closed_by) for r in rows]

    async def watch_inbox() -> None:
        while True:
            for instance_id, task_id, _, _ in await asyncio.to_thread(inbox_rows):
                first = seen.setdefault(instance_id, task_id)
                if first != task_id and f"{instance_id}: {first} then {task_id}" not in changed:
                    changed.append(f"{instance_id}: {first} then {task_id}")
                appeared[instance_id].set()
            await asyncio.sleep(0.2)

    async def complete(handle: WorkflowHandle[Any, Any], i: int, task_id: str) -> None:
        """Complete a task like a careful client: retry through outages under one update id, so
        that an attempt whose answer died with the worker is not applied twice."""
        want = _expected(i, "")
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                async with asyncio.timeout(15):
                    result = await handle.execute_update(
                        COMPLETE_TASK_UPDATE,
                        CompleteTaskInput(task_id=task_id, variables=want["complete"], actor=want["actor"]),
                        id=f"complete-{task_id}",
                        result_type=CompleteTaskResult,
                    )
                assert result.task_id == task_id
                return
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                if not (isinstance(cause, ApplicationError) and cause.type == TASK_NOT_OPEN):
                    raise AssertionError(f"instance {i}: completing task {task_id} failed: {cause}") from err
                # Refused although the inbox shows it open and nobody else completes it.
                refused.append(f"instance {i} ({handle.id}) task {task_id} at {_clock():.1f}s")
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"instance {i}: task {task_id} is never accepted: {cause}") from err
                await asyncio.sleep(0.5)
            except (TimeoutError, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                retries[type(err).__name__] += 1
                await asyncio.sleep(0.3)

    async def user(handle: WorkflowHandle[Any, Any], i: int) -> None:
        await appeared[handle.id].wait()
        task_id = seen[handle.id]
        if i % 2:
            # Leave this one open through every restart; then the engine, replayed by a worker
            # process that never saw it, must still show the id the user saw.
            await chaos_over.wait()
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                try:
                    state: ProcessState = await handle.query(STATE_QUERY, result_type=ProcessState)
                    break
                except RPCError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.3)
            assert [t.id for t in state.open_tasks] == [task_id], f"instance {i}: the task id changed"
            assert state.active == ["approve"]
        await complete(handle, i, task_id)

    async def chaos() -> None:
        try:
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(1.0, 2.0))
                timeline.append(f"kill {engine.kills + 1} at {_clock():.1f}s: {len(seen)} tasks seen")
                await engine.kill()
                await asyncio.sleep(rng.uniform(0.0, 0.8))
                await engine.start()
        finally:
            chaos_over.set()

    background: list[asyncio.Task[None]] = []
    try:
        with http_server() as (base_url, requests):
            await engine.start()
            handles: list[WorkflowHandle[Any, ProcessResult]] = await asyncio.gather(
                *(
                    client.start_workflow(
                        PROCESS_WORKFLOW,
                        start_input(
                            instance_id=instance_id,
                            key=definition.key,
                            version=1,
                            digest=definition.hash,
                            files=definition.files,
                            variables=_expected(i, base_url)["start"],
                            started_by="durability-test",
                        ),
                        id=instance_id,
                        task_queue=task_queue,
                        result_type=ProcessResult,
                    )
                    for i, instance_id in enumerate(ids)
                )
            )
            background.append(asyncio.create_task(watch_inbox()))
            users = [asyncio.create_task(user(h, i)) for i, h in enumerate(handles)]
            background.extend(users)
            await chaos()
            try:
                async with asyncio.timeout(90):
                    results: list[ProcessResult] = await asyncio.gather(*(h.result() for h in handles))
                    await asyncio.gather(*users)
            except TimeoutError:
                report = await _diagnose(client, ids, users)
                raise AssertionError(f"instances stuck:\n{report}\nengine stderr:\n{engine.stderr_tail()}") from None
            except WorkflowFailureError as err:
                raise AssertionError(f"an instance failed: {err.cause}") from err
            inbox = await asyncio.to_thread(inbox_rows)
            sent = list(requests)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await engine.kill(chaos=False)
    elapsed = asyncio.get_running_loop().time() - started

    assert engine.kills == KILLS
    assert not changed, f"user task ids changed across worker restarts: {changed}"

    # every instance completed, once, with the right data
    for i, result in enumerate(results):
        want = _expected(i, base_url)
        total = want["total"]
        assert result.status == "completed"
        assert result.completed == ELEMENTS, f"instance {i}: {result.completed}"
        variables = result.variables
        assert {k: variables[k] for k in want["start"]} == want["start"]
        assert {k: variables[k] for k in want["complete"]} == want["complete"]
        assert variables["total"] == total
        assert variables["reservation"]["status"] == 200
        assert variables["reservation"]["json"] == {
            "ok": True,
            "path": "/reserve",
            "echo": {"order": i, "total": total},
        }
        assert variables["reserved"] == total
        assert variables["notification"]["status"] == 200
        assert variables["notification"]["json"]["echo"] == {
            "order": i,
            "reserved": total,
            **want["complete"],
        }

    # the inbox: one row per instance, the id the user first saw, closed once by that user
    rows_by_instance: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    for instance_id, task_id, state, closed_by in inbox:
        rows_by_instance[instance_id].append((task_id, state, closed_by))
    for instance_id in ids:
        want = _expected(index[instance_id], base_url)
        assert rows_by_instance[instance_id] == [(seen[instance_id], "completed", want["actor"])]

    # the services: one request each per instance (the connector worker was never killed)
    calls = Counter((r["path"], r["json"]["order"]) for r in sent)
    assert calls == Counter({(path, i): 1 for i in range(INSTANCES) for path in ("/reserve", "/notify")})
    keys = [r["headers"].get("Idempotency-Key") for r in sent]
    assert len(set(keys)) == len(keys) == 2 * INSTANCES

    # the histories: one successful completion per user task, two activities, no bad replays
    timeouts = 0
    for instance_id in ids:
        history = await client.get_workflow_handle(instance_id).fetch_history()
        successes, activities, failures = 0, 0, []
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
                successes += event.workflow_execution_update_completed_event_attributes.outcome.HasField("success")
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activities += event.activity_task_scheduled_event_attributes.activity_type.name == "http.request"
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                timeouts += 1
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                attrs = event.workflow_task_failed_event_attributes
                failures.append(f"{WorkflowTaskFailedCause.Name(attrs.cause)}: {attrs.failure.message}")
        assert successes == 1, f"instance {index[instance_id]}: {successes} successful completions"
        assert activities == 2, f"instance {index[instance_id]}: {activities} service calls scheduled"
        bad = [f for f in failures if "NON_DETERMINISTIC" in f or "UNHANDLED_FAILURE" in f]
        assert not bad, f"instance {index[instance_id]}: workflow tasks failed: {bad}"
    # the kills hit work in flight: workflow tasks held by a dead worker had to time out
    assert timeouts > 0

    failed = await replay_failures([history async for history in _histories(client, ids)])
    assert not failed, f"non-deterministic replays: {failed}"

    print(
        f"durability: {INSTANCES} instances, {engine.kills} kills, {engine.generation} engine processes, "
        f"{elapsed:.1f}s; update retries {dict(retries)}, workflow task timeouts {timeouts}; {timeline}"
    )
    # Last, so that everything above is proven first: a task the inbox shows open must never be
    # refused as "not open" (the API would answer 409 "no longer open" for a task that is open).
    assert not refused, f"the engine refused to complete tasks the inbox showed open: {refused}"
