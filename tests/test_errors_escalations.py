"""Errors and escalations thrown inside subprocesses, on the platform: an error end event caught by an
error boundary event on its subprocess; an escalation caught by a non-interrupting boundary event while
the work goes on; an error nobody catches fails the instance naming the element and the error (plain
SpiffWorkflow completes such an instance as if nothing happened). Event subprocesses started by errors
or escalations are refused at deploy: SpiffWorkflow 3.2 runs them as soon as the process starts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

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


async def test_error_and_escalation_event_subprocesses_are_refused_at_deploy(api: httpx.AsyncClient) -> None:
    xml = MODEL.read_text().replace(
        '    <bpmn:boundaryEvent id="late_caught" attachedToRef="work" cancelActivity="false">',
        '    <bpmn:subProcess id="on_late" triggeredByEvent="true">\n'
        '      <bpmn:startEvent id="late_start" isInterrupting="false">'
        '<bpmn:escalationEventDefinition escalationRef="late" /></bpmn:startEvent>\n'
        "    </bpmn:subProcess>\n"
        '    <bpmn:boundaryEvent id="late_caught" attachedToRef="work" cancelActivity="false">',
    )
    response = await deploy_text(api, "event_subprocess.bpmn", xml)
    assert response.status_code == 422, response.text
    [problem] = (
        response.json()["detail"]["errors"]
        if isinstance(response.json()["detail"], dict)
        else [p for p in response.json()["detail"] if "late_start" in str(p)]
    )
    assert "late_start" in str(problem) and "event subprocess" in str(problem)
