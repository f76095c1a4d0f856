"""Instances that outgrow one Temporal run continue as new with SpiffWorkflow's state, so no run's
history nears Temporal's limits (workflows/history_budget.py). The API here starts instances with a
small history limit (AIMATRIX_HISTORY_LIMIT=300, ceiling 375): a few hundred steps cross several
runs in seconds, on the real server and pools, and every run's history is checked against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from aimatrix.settings import Settings
from api.main import create_app
from bpmn import runtime, snapshot
from bpmn.definitions import content_hash, load_process
from tests.conftest import API_KEY
from tests.helpers import DATA, completed_history, deploy, http_server, start, wait_for, wait_for_tasks
from workflows.history_budget import HistoryBudget

LIMIT = 300
CEILING = HistoryBudget(LIMIT).ceiling


@pytest.fixture(scope="module")
async def short_runs(settings: Settings, client: Client, workers: None) -> AsyncIterator[httpx.AsyncClient]:
    """The platform's API, with runs limited to LIMIT history events."""
    app = create_app(settings.model_copy(update={"history_limit": LIMIT}), temporal=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver/api/v1",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as http,
    ):
        yield http


async def _runs(client: Client, instance_id: str) -> list[tuple[WorkflowExecutionStatus | None, int]]:
    """Every run of the instance, oldest first: its status and its history's length."""
    runs = []
    async for execution in client.list_workflows(f"WorkflowId = '{instance_id}'"):
        handle = client.get_workflow_handle(instance_id, run_id=execution.run_id)
        runs.append((execution.start_time, execution.status, len((await handle.fetch_history()).events)))
    return [(status, length) for _, status, length in sorted(runs, key=lambda r: r[0])]


async def _counted_to(api: httpx.AsyncClient, instance_id: str, n: int, *, incident: bool = False) -> dict[str, Any]:
    """The instance's state once its loop counted to n (and, with `incident`, an incident is open)."""
    for _ in range(900):
        state: dict[str, Any] = (await api.get(f"/instances/{instance_id}")).json()
        if state["variables"].get("i") == n and (state["incidents"] or not incident):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{instance_id} never counted to {n}: {state}")


def _sequence_unbroken(records: list[dict[str, Any]]) -> None:
    seqs = [r["instance_seq"] for r in records if r.get("instance_seq") is not None]
    assert seqs == list(range(1, len(seqs) + 1)), "the audit numbering goes on across runs, without gaps"


async def test_a_loop_continues_as_new_and_ends_with_its_data(short_runs: httpx.AsyncClient, client: Client) -> None:
    await deploy(short_runs, DATA / "counting_loop.bpmn")
    instance = await start(short_runs, "counting_loop", {"i": 0, "n": 120})
    done = await wait_for(short_runs, instance, "completed", timeout=180)
    assert done["variables"] == {"i": 120, "n": 120}
    assert done["completed"] == ["start", "count", "more", "end"]

    runs = await _runs(client, instance)
    assert len(runs) >= 3, runs  # ~7 events an iteration: 120 iterations do not fit in 300 events
    assert [s for s, _ in runs[:-1]] == [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (len(runs) - 1)
    assert runs[-1][0] == WorkflowExecutionStatus.COMPLETED
    assert max(length for _, length in runs) <= CEILING, runs

    history = await completed_history(short_runs, instance)
    assert sum(r["action"] == "element.completed" and r["element_id"] == "count" for r in history) == 120
    assert sum(r["action"] == "instance.continued" for r in history) == len(runs) - 1
    assert [r["action"] for r in history].count("instance.started") == 1
    _sequence_unbroken(history)


async def test_an_open_task_waits_through_runs_and_completes_in_the_last(
    short_runs: httpx.AsyncClient, client: Client
) -> None:
    await deploy(short_runs, DATA / "loop_beside_approval.bpmn")
    instance = await start(short_runs, "loop_beside_approval", {"i": 0, "n": 100})
    [task] = await wait_for_tasks(short_runs, instance)
    await _counted_to(short_runs, instance, 100)  # the loop ends while the approval waits
    runs = await _runs(client, instance)
    assert len(runs) >= 3 and runs[-1][0] == WorkflowExecutionStatus.RUNNING, runs
    assert [t["id"] for t in await wait_for_tasks(short_runs, instance)] == [task["id"]]  # one row, the same id

    completed = await short_runs.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": True}})
    assert completed.status_code == 200, completed.text
    done = await wait_for(short_runs, instance, "completed")
    # as in memory: the join takes the data of the branch that arrived last, the approval's (i as at the fork)
    assert (
        done["variables"] == _in_memory({"i": 0, "n": 100}, {"approved": True}) == {"i": 0, "n": 100, "approved": True}
    )
    history = await completed_history(short_runs, instance)
    approvals = [r for r in history if r["action"] == "element.completed" and r["element_id"] == "approve"]
    assert len(approvals) == 1 and approvals[0]["data"] == {"variables": {"approved": True}}
    _sequence_unbroken(history)
    assert max(length for _, length in await _runs(client, instance)) <= CEILING


async def test_a_called_instance_answers_the_run_its_caller_is_in_now(
    short_runs: httpx.AsyncClient, client: Client
) -> None:
    await deploy(short_runs, DATA / "called_review.bpmn")
    await deploy(short_runs, DATA / "loop_beside_call.bpmn")
    instance = await start(short_runs, "loop_beside_call", {"i": 0, "n": 100, "amount": 4, "escalate": False})
    await _counted_to(short_runs, instance, 100)  # the loop ends while the called instance waits
    runs = await _runs(client, instance)
    assert len(runs) >= 3 and runs[-1][0] == WorkflowExecutionStatus.RUNNING, runs
    [called] = (await short_runs.get("/instances", params={"parent_id": instance})).json()[
        "items"
    ]  # one, not one a run
    [task] = await wait_for_tasks(short_runs, called["id"])

    completed = await short_runs.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": True}})
    assert completed.status_code == 200, completed.text
    done = await wait_for(short_runs, instance, "completed")
    assert done["variables"]["score"] == 8 and {"call_review", "review", "score"} <= set(done["completed"])
    history = await completed_history(short_runs, instance)
    assert [r["action"] for r in history if r["action"].startswith("call.")] == ["call.started", "call.completed"]
    _sequence_unbroken(history)
    assert max(length for _, length in await _runs(client, instance)) <= CEILING


async def test_a_message_reaches_a_subscription_made_runs_before(short_runs: httpx.AsyncClient, client: Client) -> None:
    await deploy(short_runs, DATA / "loop_beside_receive.bpmn")
    instance = await start(short_runs, "loop_beside_receive", {"i": 0, "n": 100}, business_key="LBR-1")
    state = await _counted_to(short_runs, instance, 100)
    runs = await _runs(client, instance)
    assert len(runs) >= 3 and runs[-1][0] == WorkflowExecutionStatus.RUNNING, runs
    assert "go_ahead" in state["active"]  # its subscription waits (so does the join)

    message = {"name": "go-ahead", "correlation_key": "LBR-1", "variables": {"ok": 1}}
    sent = await short_runs.post("/messages", json=message)
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivered"] == [{"instance_id": instance, "element_id": "go_ahead"}]
    done = await wait_for(short_runs, instance, "completed")
    assert "go_ahead" in done["completed"]
    history = await completed_history(short_runs, instance)
    assert [r["element_id"] for r in history if r["action"] == "message.received"] == ["go_ahead"]
    _sequence_unbroken(history)


async def test_an_incident_waits_through_runs_and_is_retried_in_a_later_one(
    short_runs: httpx.AsyncClient, client: Client
) -> None:
    await deploy(short_runs, DATA / "incident_beside_loop.bpmn")
    with http_server() as (base_url, requests):
        variables = {"i": 0, "n": 100, "base_url": base_url, "path": "/fail"}
        instance = await start(short_runs, "incident_beside_loop", variables)
        # the loop ends while the incident waits (its retries take a few seconds)
        state = await _counted_to(short_runs, instance, 100, incident=True)
        [incident] = state["incidents"]
        runs = await _runs(client, instance)
        assert len(runs) >= 3 and runs[-1][0] == WorkflowExecutionStatus.RUNNING, runs
        failed_calls = len(requests)
        assert failed_calls == 3  # the pool's attempts, and none again in a later run

        retried = await short_runs.post(f"/incidents/{incident['id']}/retry", json={"variables": {"path": "/ok"}})
        assert retried.status_code == 200, retried.text
        done = await wait_for(short_runs, instance, "completed")
    assert [r["path"] for r in requests] == ["/fail"] * failed_calls + ["/ok"]
    assert done["variables"]["notified"]["json"]["path"] == "/ok"
    history = await completed_history(short_runs, instance)
    engine = [r["action"] for r in history if r["action"].startswith("incident.") and r["instance_seq"] is not None]
    assert engine == ["incident.raised", "incident.retried"]  # raised in one run, retried in a later one
    _sequence_unbroken(history)


async def test_a_wide_parallel_multi_instance_spreads_over_runs_in_input_order(
    short_runs: httpx.AsyncClient, client: Client
) -> None:
    await deploy(short_runs, DATA / "echo_each.bpmn")
    items = list(range(150))  # ~6 events each: at most ~60 fit in flight under the ceiling
    with http_server() as (base_url, requests):
        instance = await start(short_runs, "echo_each", {"items": items, "base_url": base_url})
        done = await wait_for(short_runs, instance, "completed", timeout=180)
    assert [answer["json"]["echo"]["n"] for answer in done["variables"]["answers"]] == items
    assert sorted(r["json"]["n"] for r in requests) == items  # each item called once: none lost, none twice
    runs = await _runs(client, instance)
    assert len(runs) >= 2 and max(length for _, length in runs) <= CEILING, runs


async def test_a_1000_way_parallel_multi_instance_completes_in_bounded_runs(
    api: httpx.AsyncClient, client: Client
) -> None:
    # at the default limit (8,000 events) 1,000 activities in flight fit one run: all start at once
    await deploy(api, DATA / "echo_each.bpmn")
    items = list(range(1000))
    with http_server() as (base_url, requests):
        instance = await start(api, "echo_each", {"items": items, "base_url": base_url})
        done = await wait_for(api, instance, "completed", timeout=240)
    assert [answer["json"]["echo"]["n"] for answer in done["variables"]["answers"]] == items
    assert sorted(r["json"]["n"] for r in requests) == items
    runs = await _runs(client, instance)
    assert max(length for _, length in runs) <= HistoryBudget().ceiling, runs


def _in_memory(variables: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
    files = {"loop_beside_approval.bpmn": (DATA / "loop_beside_approval.bpmn").read_text()}
    workflow = runtime.new_workflow(load_process(files, "loop_beside_approval", content_hash(files)), variables)
    runtime.run_engine(workflow)
    [task] = runtime.human_tasks(workflow)
    task.set_data(**approval)
    task.run()
    runtime.run_engine(workflow)
    assert workflow.completed
    result: dict[str, Any] = runtime.variables(workflow)
    return result


@pytest.mark.backend_free
def test_a_snapshot_keeps_a_waiting_timer_s_deadline() -> None:
    files = {"timers.bpmn": (DATA / "timers.bpmn").read_text()}
    process = load_process(files, "wait_three_days", content_hash(files))
    workflow = runtime.new_workflow(process, {})
    runtime.run_engine(workflow)
    deadline = runtime.next_timer_deadline(workflow)
    assert deadline is not None  # three days from now
    restored = snapshot.load(snapshot.dump(workflow), process)
    assert runtime.next_timer_deadline(restored) == deadline  # the next run waits for the same moment


@pytest.mark.backend_free
def test_a_snapshot_restores_the_state_it_was_taken_from() -> None:
    files = {"loop_beside_approval.bpmn": (DATA / "loop_beside_approval.bpmn").read_text()}
    process = load_process(files, "loop_beside_approval", content_hash(files))
    workflow = runtime.new_workflow(process, {"i": 0, "n": 3}, inline_scripts=False)
    runtime.run_engine(workflow)
    restored = snapshot.load(snapshot.dump(workflow), process)
    assert {str(t.id): t.state for t in restored.tasks.values()} == {
        str(t.id): t.state for t in workflow.tasks.values()
    }
    assert [str(t.id) for t in runtime.human_tasks(restored)] == [str(t.id) for t in runtime.human_tasks(workflow)]
    [script] = runtime.started_external_tasks(restored)
    runtime.complete_script_task(script, {"data": {**script.data, "i": 1}})
    restored.script_engine.inline_scripts = True
    runtime.run_engine(restored)
    assert runtime.variables(restored)["i"] == 3
    [approval] = runtime.human_tasks(restored)
    approval.run()
    runtime.run_engine(restored)
    assert restored.completed and runtime.completed_elements(restored)[-1] == "end"
