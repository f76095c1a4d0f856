"""Loops that run long: SpiffWorkflow's task tree grows by a chain link per step, its iterator stops
at depth 1,000 (a loop past ~500 iterations "completes" with a task still ready and its data lost),
and each pass walks the whole tree. The engine cuts the finished chain above the live tokens
(bpmn/pruning.py): a 5,000-iteration loop ends right, with a tree that stays small."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import httpx
import pytest
from temporalio.client import Client

from bpmn import event_subprocesses, messages, pruning, runtime
from bpmn.definitions import content_hash, load_process, start_input
from bpmn.parser import ProcessSpec
from tests.helpers import DATA, completed_history, deploy, start, take_and_complete, wait_for, wait_for_tasks
from workflows.contracts import ENGINE_TASK_QUEUE, PROCESS_WORKFLOW, ProcessResult
from workflows.process_engine import PASS_STEPS


def _loop() -> ProcessSpec:
    files = {"counting_loop.bpmn": (DATA / "counting_loop.bpmn").read_text()}
    return load_process(files, "counting_loop", content_hash(files))


@pytest.mark.backend_free
def test_plain_spiffworkflow_loses_a_loop_past_its_iterator_depth() -> None:
    # why the engine prunes: without it, 600 iterations "complete" with the data gone
    workflow = runtime.new_workflow(_loop(), {"i": 0, "n": 600})
    workflow.do_engine_steps()
    assert workflow.is_completed() and runtime.variables(workflow) != {"i": 600, "n": 600}


@pytest.mark.backend_free
def test_a_5000_iteration_loop_completes_with_its_data() -> None:
    workflow = runtime.new_workflow(_loop(), {"i": 0, "n": 5000})
    removed = runtime.run_engine(workflow)
    assert workflow.completed
    assert runtime.variables(workflow) == {"i": 5000, "n": 5000}
    assert runtime.completed_elements(workflow) == ["start", "count", "more", "end"]
    assert len(workflow.tasks) < 2 * pruning.PRUNE_DEPTH  # ~10,000 tasks ran; few are kept
    assert len(removed) > 9_000


@pytest.mark.backend_free
def test_a_cut_recovers_a_loop_spiffworkflow_stopped_seeing() -> None:
    workflow = runtime.new_workflow(_loop(), {"i": 0, "n": 2000})
    workflow.do_engine_steps()  # stops where its iterator stops, ~500 iterations in, the rest unseen
    assert not workflow.completed and len(workflow.tasks) > 900
    assert pruning.prune(workflow, before_cut=lambda: False) == []  # refused: nothing cut
    assert len(pruning.prune(workflow)) > 900 and len(workflow.tasks) < 2 * pruning.PRUNE_DEPTH
    runtime.run_engine(workflow)
    assert workflow.completed and runtime.variables(workflow) == {"i": 2000, "n": 2000}
    assert runtime.completed_elements(workflow) == ["start", "count", "more", "end"]


@pytest.mark.backend_free
def test_each_live_branch_below_the_root_is_cut_on_its_own() -> None:
    """A loop beside a running event subprocess: their only common ancestor is the root, so a cut
    below the common ancestor never came, and the loop stopped at Spiff's iterator depth."""
    files = {name: (DATA / name).read_text() for name in ("loop_beside_note.bpmn", "inline_next.dmn")}
    process = load_process(files, "loop_beside_note", content_hash(files))
    for by_branch, expected in ((False, 333), (True, 3_000)):  # False: histories from before (stuck at depth 1,000)
        workflow = runtime.new_workflow(process, {"i": 0, "n": 3_000})
        setattr(workflow, pruning.BRANCHES, by_branch)
        runtime.run_engine(workflow)
        [listener] = event_subprocesses.listening(workflow)
        messages.deliver(event_subprocesses.start(workflow, listener), {})
        runtime.run_engine(workflow)
        [begin] = [t for t in runtime.human_tasks(workflow) if t.task_spec.bpmn_id == "begin"]
        begin.run()
        runtime.run_engine(workflow)
        assert runtime.variables(workflow)["i"] == expected
        assert [t.task_spec.bpmn_id for t in runtime.human_tasks(workflow)] == ["read"]
    assert len(workflow.tasks) < 4 * pruning.PRUNE_DEPTH  # both branches kept, each short


async def test_a_loop_past_the_cut_depth_runs_on_the_platform(api: httpx.AsyncClient, client: Client) -> None:
    await deploy(api, DATA / "counting_loop.bpmn")
    instance = await start(api, "counting_loop", {"i": 0, "n": 70})  # cuts about every 10 iterations
    done = await wait_for(api, instance, "completed", timeout=120)
    assert done["variables"] == {"i": 70, "n": 70}
    assert done["completed"] == ["start", "count", "more", "end"]
    history = await completed_history(api, instance)
    assert sum(r["action"] == "element.completed" and r["element_id"] == "count" for r in history) == 70
    events = (await client.get_workflow_handle(instance).fetch_history()).events
    markers = [e.marker_recorded_event_attributes for e in events if e.HasField("marker_recorded_event_attributes")]
    assert any("prune-deep-task-trees" in str(m.details) for m in markers)  # histories before it replay uncut


async def test_a_loop_that_never_leaves_the_workflow_runs_in_bounded_passes(
    api: httpx.AsyncClient, client: Client
) -> None:
    """5,000 iterations of a gateway and a business rule task: no activity, no wait. One pass would
    hold a workflow task for seconds, past Temporal's deadlock detector (2 s), and fail it for good
    (the instance could not even be queried); bounded passes end their workflow task every
    PASS_STEPS tasks and go on in the next."""
    await deploy(api, DATA / "inline_loop.bpmn", DATA / "inline_next.dmn", expect=201)
    instance = await start(api, "inline_loop", {"i": 0, "n": 5_000})
    done = await wait_for(api, instance, "completed", timeout=300)
    assert done["variables"] == {"i": 5_000, "n": 5_000}
    assert done["completed"] == ["start", "again", "count", "more", "end"]
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{instance}'")]
    breaks = 0
    for run in runs:
        history = await client.get_workflow_handle(instance, run_id=run.run_id).fetch_history()
        assert len(history.events) <= 10_240
        breaks += sum(e.HasField("timer_started_event_attributes") for e in history.events)
    # ~15,000 tasks (3 an iteration: the gateway before the count, the count, the gateway after) at
    # PASS_STEPS a pass
    assert 3 * 5_000 // PASS_STEPS - 2 <= breaks <= 3 * 5_000 // PASS_STEPS + 2, breaks


async def test_a_long_loop_beside_a_running_event_subprocess_is_cut_and_keeps_its_count(
    api: httpx.AsyncClient,
) -> None:
    """1,000 iterations while a non-interrupting event subprocess's task stays open beside them. The
    loop's chain must still be cut (the only task above both is the root: before, nothing was cut and
    SpiffWorkflow's iterator stopped the loop at depth 1,000, i = 333, until the task was done), and
    the event subprocess, ending last with the count it started with (0), must not undo it."""
    await deploy(api, DATA / "loop_beside_note.bpmn", DATA / "inline_next.dmn", expect=201)
    instance = await start(api, "loop_beside_note", {"i": 0, "n": 1_000}, business_key="LOOP-1")
    [begin] = await wait_for_tasks(api, instance)
    for _ in range(300):
        sent = await api.post("/messages", json={"name": "loop-note", "correlation_key": "LOOP-1"})
        if sent.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert sent.status_code == 200, sent.text
    await wait_for_tasks(api, instance, count=2)
    assert (await take_and_complete(api, begin, {})).status_code == 200
    for _ in range(600):  # the loop runs to its end while the note stays open
        state = (await api.get(f"/instances/{instance}")).json()
        if state["variables"].get("i") == 1_000:
            break
        await asyncio.sleep(0.2)
    assert state["variables"]["i"] == 1_000 and state["status"] == "running", state
    [read] = await wait_for_tasks(api, instance)
    assert read["element_id"] == "read"
    assert (await take_and_complete(api, read, {})).status_code == 200
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"i": 1_000, "n": 1_000}, done["variables"]
    assert {"begin", "count", "end", "noted", "read", "on_note"} <= set(done["completed"])


async def test_a_run_whose_history_grows_large_in_bytes_continues_as_new(client: Client, workers: None) -> None:
    """Temporal terminates a run at 50 MB of history whatever its event count: payloads under the
    offload threshold add up. A run drains at its size limit too (8 MiB by default; 6 kB here, as the
    platform's payload codec keeps this loop's audit batches out of the history) and continues as new;
    every history of the session replays at its end (tests/conftest.py), this size-drained one too."""
    files = {name: (DATA / name).read_text() for name in ("inline_loop.bpmn", "inline_next.dmn")}
    instance_id = f"size-drained-{uuid.uuid4()}"
    inp = dataclasses.replace(
        start_input(instance_id=instance_id, key="inline_loop", version=1, digest=content_hash(files), files=files,
                    variables={"i": 0, "n": 2_000}),
        history_size_limit=6_000,
    )  # fmt: skip
    result = await client.execute_workflow(
        PROCESS_WORKFLOW, inp, id=instance_id, task_queue=ENGINE_TASK_QUEUE, result_type=ProcessResult
    )
    assert result.variables == {"i": 2_000, "n": 2_000}
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{instance_id}'")]
    lengths = []
    for run in runs:
        history = await client.get_workflow_handle(instance_id, run_id=run.run_id).fetch_history()
        lengths.append(len(history.events))
        assert len(history.events) < 1_000, len(history.events)  # far below the event limit: size decided
    assert len(runs) >= 2, lengths
