"""Errors and escalations thrown inside subprocesses, on the platform: an error end event caught by an
error boundary event on its subprocess; an escalation caught by a non-interrupting boundary event while
the work goes on; an error nobody catches fails the instance naming the element and the error (plain
SpiffWorkflow completes such an instance as if nothing happened). Event subprocesses started by errors
or escalations run at the process level: a non-interrupting one beside the flow, an interrupting one in
its place (SpiffWorkflow 3.2 read their start events as none starts and ran them as soon as the process
started); the forms that cannot run are refused at deploy, naming the start event."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bpmn import runtime
from bpmn.definitions import content_hash, load_process
from tests.helpers import (
    DATA,
    completed_history,
    deploy,
    deploy_text,
    start,
    take_and_complete,
    wait_for,
    wait_for_tasks,
)

MODEL = DATA / "errors_and_escalations.bpmn"


async def test_an_error_end_event_is_caught_by_the_boundary_event_of_its_subprocess(api: httpx.AsyncClient) -> None:
    assert (await deploy(api, MODEL)).status_code in (200, 201)
    caught = await start(api, "error_boundary_on_subprocess", {"stock": 0})
    done = await wait_for(api, caught, "completed")
    assert done["variables"] == {"stock": 0, "reordered": True}
    assert {"none_left", "out_of_stock_caught", "reorder", "oos_end"} <= set(done["completed"])
    assert "ship" not in done["completed"] and "picked" not in done["completed"]

    fine = await start(api, "error_boundary_on_subprocess", {"stock": 3})
    [task] = await wait_for_tasks(api, fine)
    assert task["element_id"] == "ship"  # no error: the flow goes on, the boundary path never runs
    assert (await take_and_complete(api, task, {})).status_code == 200
    done = await wait_for(api, fine, "completed")
    assert "reordered" not in done["variables"] and "out_of_stock_caught" not in done["completed"]


async def test_an_escalation_runs_the_non_interrupting_path_while_the_work_goes_on(api: httpx.AsyncClient) -> None:
    assert (await deploy(api, MODEL)).status_code in (200, 201)
    instance = await start(api, "escalation_boundary_on_subprocess")
    [task] = await wait_for_tasks(api, instance)
    assert task["element_id"] == "finish"
    running = await _until_completed(api, instance, "late_end")  # its script runs in the sandbox pool
    assert {"running_late", "late_caught", "tell_customer", "late_end"} <= set(running["completed"])
    assert running["variables"] == {"customer_told": True}
    assert (await take_and_complete(api, task, {"finished": True})).status_code == 200
    done = await wait_for(api, instance, "completed")
    assert {"finish", "work", "x_end"} <= set(done["completed"])
    history = await completed_history(api, instance)
    assert [r["element_id"] for r in history if r["action"] == "element.completed"].index("late_caught") < [
        r["element_id"] for r in history if r["action"] == "element.completed"
    ].index("finish")


async def _until_completed(api: httpx.AsyncClient, instance_id: str, element_id: str) -> dict[str, Any]:
    for _ in range(300):
        state: dict[str, Any] = (await api.get(f"/instances/{instance_id}")).json()
        if element_id in state["completed"]:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{element_id} never completed in {instance_id}: {state}")


async def test_an_error_nobody_catches_fails_the_instance_naming_it(api: httpx.AsyncClient) -> None:
    assert (await deploy(api, MODEL)).status_code in (200, 201)
    instance = await start(api, "uncaught_error")
    failed = await wait_for(api, instance, "failed")
    assert "give_up" in failed["error"] and "UNCAUGHT" in failed["error"] and "Nobody catches this" in failed["error"]
    assert "u_end" not in failed["completed"]


EVENT_SUBPROCESSES = DATA / "event_subprocesses.bpmn"


async def test_an_escalation_starts_a_non_interrupting_event_subprocess_beside_the_flow(api: httpx.AsyncClient) -> None:
    assert (await deploy(api, EVENT_SUBPROCESSES)).status_code in (200, 201)
    instance = await start(api, "event_subprocesses", {"fail": False})
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"fail": False, "x": 1, "noted": True}  # the process's data, and the handler's
    assert {"esc_start", "note", "on_late", "ok"} <= set(done["completed"])
    assert "err_start" not in done["completed"]


async def test_an_error_starts_an_interrupting_event_subprocess_that_handles_it(api: httpx.AsyncClient) -> None:
    assert (await deploy(api, EVENT_SUBPROCESSES)).status_code in (200, 201)
    instance = await start(api, "event_subprocesses", {"fail": True})
    done = await wait_for(api, instance, "completed")
    # the handler saw the data as it was when the error was thrown (x), and its own is kept. The
    # escalation's handler was still running its script (on the sandbox pool) when the error came, in
    # the same engine pass: the interrupting event subprocess ended it, as it ends everything else.
    assert done["variables"] == {"fail": True, "x": 1, "handled": True}
    assert {"fail", "err_start", "handle", "on_error"} <= set(done["completed"])
    assert "note" not in done["completed"]


async def test_an_interrupting_event_subprocess_cancels_a_waiting_user_task(api: httpx.AsyncClient) -> None:
    assert (await deploy(api, EVENT_SUBPROCESSES)).status_code in (200, 201)
    calm = await start(api, "interrupted_wait", {"fail": False})
    [task] = await wait_for_tasks(api, calm)
    assert (await take_and_complete(api, task, {"ok": True})).status_code == 200
    done = await wait_for(api, calm, "completed")
    assert "cleaned_up" not in done["variables"] and "ok2" in done["completed"]

    failing = await start(api, "interrupted_wait", {"fail": True})
    done = await wait_for(api, failing, "completed")
    assert done["variables"] == {"fail": True, "cleaned_up": True}
    assert "wait" not in done["completed"] and "ok2" not in done["completed"]
    assert (await api.get("/tasks", params={"instance_id": failing, "state": "open"})).json() == []
    history = await completed_history(api, failing)
    cancelled = [r["element_id"] for r in history if r["action"] == "element.cancelled"]
    assert "wait" in cancelled or not any(r["element_id"] == "wait" for r in history), cancelled


async def test_event_subprocesses_that_cannot_run_are_refused_at_deploy(api: httpx.AsyncClient) -> None:
    text = EVENT_SUBPROCESSES.read_text()
    cases = {
        "none_start": (text.replace(
            '<bpmn:startEvent id="esc_start" isInterrupting="false"><bpmn:outgoing>l1</bpmn:outgoing>'
            '<bpmn:escalationEventDefinition escalationRef="late_esc" /></bpmn:startEvent>',
            '<bpmn:startEvent id="esc_start"><bpmn:outgoing>l1</bpmn:outgoing></bpmn:startEvent>'),
            "esc_start", "an event subprocess starts on an event"),
        "plain_error_start": (text.replace(
            '<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>',
            '<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing>'
            '<bpmn:errorEventDefinition errorRef="oops_error" /></bpmn:startEvent>'),
            "s", "belong to event subprocesses"),
    }  # fmt: skip
    for label, (xml, element_id, expected) in cases.items():
        assert xml != text, label
        response = await deploy_text(api, f"{label}.bpmn", xml.replace('id="event_subprocesses"', f'id="{label}"'))
        assert response.status_code == 422, (label, response.text)
        problems = response.json()["detail"]
        assert any(p["element_id"] == element_id and expected in p["message"] for p in problems), (label, problems)


@pytest.mark.backend_free
def test_every_instance_of_a_definition_runs_its_event_subprocesses_alike() -> None:
    # SpiffWorkflow linked an event subprocess into the shared spec when first triggered: the first
    # instance lost the handler's data, and later instances that never triggered it never ended
    files = {"e.bpmn": EVENT_SUBPROCESSES.read_text() + "<!-- a spec of its own -->"}
    process = load_process(files, "event_subprocesses", content_hash(files))
    outcomes = []
    for fail in (True, False, True, False):
        workflow = runtime.new_workflow(process, {"fail": fail})
        runtime.run_engine(workflow)
        outcomes.append((workflow.completed, runtime.variables(workflow)))
    handled = (True, {"fail": True, "x": 1, "noted": True, "handled": True})
    calm = (True, {"fail": False, "x": 1, "noted": True})
    assert outcomes == [handled, calm, handled, calm]
