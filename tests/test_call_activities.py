"""Call activities on real Temporal: each call is a child workflow, an instance of the called process's
deployed definition with its own inbox tasks and audit trail, bound to the latest version or a pinned
one; data goes in and comes back; errors and escalations reach the call activity's boundary events;
an interrupting boundary event or cancelling the caller cancels the called instance."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from tests.helpers import DATA, completed_history, deploy, deploy_text, start, take_and_complete, wait_for

REVIEW = DATA / "called_review.bpmn"
ORDER = DATA / "calling_order.bpmn"


async def _called(api: httpx.AsyncClient, caller: str, *, timeout: float = 30) -> dict[str, Any]:
    """The one instance the caller's call activity started, once it runs in Temporal."""
    for _ in range(int(timeout * 20)):
        listed = (await api.get("/instances", params={"parent_id": caller})).json()["items"]
        if listed and (await api.get(f"/instances/{listed[0]['id']}")).status_code == 200:
            assert len(listed) == 1, listed
            return dict(listed[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{caller} started no called instance")


async def _open_task(api: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    for _ in range(600):
        tasks = (await api.get("/tasks", params={"instance_id": instance_id})).json()
        if tasks:
            return dict(tasks[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no task opened in {instance_id}")


async def test_a_call_runs_as_an_instance_of_the_called_definition(api: httpx.AsyncClient, client: Client) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "calling_order", {"amount": 21, "escalate": False, "patience": "PT1H"})
    called = await _called(api, caller)
    assert (called["definition_key"], called["parent_id"], called["parent_element_id"]) == (
        "called_review",
        caller,
        "call_review",
    )
    # the reviewer's task is the called instance's, in the inbox like any other
    task = await _open_task(api, called["id"])
    assert (task["element_id"], task["definition_key"]) == ("review", "called_review")
    assert (await api.get("/tasks", params={"instance_id": caller})).json() == []
    assert (await take_and_complete(api, task, {"approved": True})).status_code == 200

    done = await wait_for(api, caller, "completed")
    # in: the caller's data; back: the called process's final data
    label = done["variables"].pop("label")  # which version ran: the pinned-version test deploys another
    assert label == f"v{called['version']}" if called["version"] <= 2 else label
    assert done["variables"] == {"amount": 21, "escalate": False, "patience": "PT1H", "approved": True, "score": 42}
    assert {"call_review", "reviewed", "review", "score", "review_end"} <= set(done["completed"])
    child = await wait_for(api, called["id"], "completed")
    assert child["parent_id"] == caller and child["variables"]["score"] == 42

    # a Temporal child workflow of the caller
    description = await client.get_workflow_handle(called["id"]).describe()
    assert description.raw_description.workflow_execution_info.parent_execution.workflow_id == caller
    history = await completed_history(api, caller)
    started = next(r for r in history if r["action"] == "call.started")
    assert started["element_id"] == "call_review" and started["data"]["instance_id"] == called["id"]
    returned = next(r for r in history if r["action"] == "call.completed")
    assert returned["data"]["variables"]["score"] == 42


async def test_calls_bind_to_the_latest_or_a_pinned_version(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    v2 = REVIEW.read_text().replace('label = "v1"', 'label = "v2"')
    deployed = await deploy_text(api, "called_review.bpmn", v2)
    versions = [d["version"] for d in deployed.json()["definitions"] if d["key"] == "called_review"]

    latest = await start(api, "calling_order", {"amount": 1, "escalate": False, "patience": "PT1H"})
    pinned = await start(api, "call_pinned", {"amount": 1, "escalate": False})
    ran = {}
    for caller in (latest, pinned):
        called = await _called(api, caller)
        ran[caller] = called["version"]
        await take_and_complete(api, await _open_task(api, called["id"]), {"approved": True})
    assert (await wait_for(api, latest, "completed"))["variables"]["label"] == "v2"
    assert (await wait_for(api, pinned, "completed"))["variables"]["label"] == "v1"
    assert ran == {latest: versions[0], pinned: 1}


async def test_a_call_bound_to_its_deployment_runs_the_version_deployed_with_it(api: httpx.AsyncClient) -> None:
    bundled = REVIEW.read_text().replace("called_review", "bundled_review").replace('label = "v1"', 'label = "bundled"')
    caller = _CALLER.format(label="bundled", call=(
        '<bpmn:callActivity id="the_call"><bpmn:extensionElements><zeebe:calledElement processId="bundled_review" '
        'bindingType="deployment" /></bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming>'
        "<bpmn:outgoing>f2</bpmn:outgoing></bpmn:callActivity>"
    ))  # fmt: skip
    files = [("files", (name, text.encode(), "application/xml"))
             for name, text in (("caller.bpmn", caller), ("bundled_review.bpmn", bundled))]  # fmt: skip
    assert (await api.post("/deployments", files=files)).status_code in (200, 201)
    later = await deploy_text(api, "bundled_review.bpmn", bundled.replace('label = "bundled"', 'label = "later"'))
    assert later.status_code == 201, later.text

    instance = await start(api, "caller_bundled", {"amount": 1, "escalate": False})
    called = await _called(api, instance)
    assert called["version"] < later.json()["definitions"][0]["version"]
    await take_and_complete(api, await _open_task(api, called["id"]), {"approved": True})
    assert (await wait_for(api, instance, "completed"))["variables"]["label"] == "bundled"


async def test_camunda_data_mappings_choose_what_goes_in_and_comes_back(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    flows = "<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
    zeebe = _CALLER.format(label="zeebe_mapped", call=(
        '<bpmn:callActivity id="the_call"><bpmn:extensionElements>'
        '<zeebe:calledElement processId="called_review" propagateAllChildVariables="false" />'
        '<zeebe:ioMapping><zeebe:input source="=price * 10" target="amount" />'
        '<zeebe:input source="=false" target="escalate" /><zeebe:output source="=score + 1" target="review_score" />'
        f"</zeebe:ioMapping></bpmn:extensionElements>{flows}</bpmn:callActivity>"
    ))  # fmt: skip
    camunda7 = _CALLER.format(label="c7_mapped", call=(
        '<bpmn:callActivity id="the_call" calledElement="called_review" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"><bpmn:extensionElements>'
        '<camunda:in source="price" target="amount" /><camunda:in sourceExpression="${false}" target="escalate" />'
        f'<camunda:out source="score" target="c7_score" /></bpmn:extensionElements>{flows}</bpmn:callActivity>'
    ))  # fmt: skip
    for label, xml in (("zeebe_mapped", zeebe), ("c7_mapped", camunda7)):
        assert (await deploy_text(api, f"{label}.bpmn", xml)).status_code in (200, 201), label

    caller = await start(api, "caller_zeebe_mapped", {"price": 3})
    called = await _called(api, caller)
    await take_and_complete(api, await _open_task(api, called["id"]), {"approved": True})
    # in: all of the caller's data and the inputs; back: only the output (propagateAllChildVariables off)
    assert (await wait_for(api, caller, "completed"))["variables"] == {"price": 3, "review_score": 61}
    assert (await wait_for(api, called["id"], "completed"))["variables"]["amount"] == 30

    caller = await start(api, "caller_c7_mapped", {"price": 3, "secret": "kept here"})
    called = await _called(api, caller)
    await take_and_complete(api, await _open_task(api, called["id"]), {"approved": True})
    assert (await wait_for(api, caller, "completed"))["variables"] == {"price": 3, "secret": "kept here", "c7_score": 6}
    child = await wait_for(api, called["id"], "completed")
    assert (
        "secret" not in child["variables"] and "price" not in child["variables"]
    )  # Camunda 7 passes what camunda:in names


async def test_an_error_the_called_instance_ends_with_reaches_the_call_activity(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "calling_order", {"amount": 5, "escalate": False, "patience": "PT1H"})
    called = await _called(api, caller)
    await take_and_complete(api, await _open_task(api, called["id"]), {"approved": False})
    done = await wait_for(api, caller, "completed")
    assert "turned_down" in done["completed"] and "reviewed" not in done["completed"]
    failed = await wait_for(api, called["id"], "failed")
    assert "threw error 'rejected'" in failed["error"]


async def test_an_error_nothing_catches_in_the_caller_is_an_incident_on_the_call(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "call_pinned", {"amount": 5, "escalate": False})  # no boundary event
    called = await _called(api, caller)
    await take_and_complete(api, await _open_task(api, called["id"]), {"approved": False})
    incident = await _incident(api, caller)
    assert (incident["element_id"], incident["error_type"]) == ("call_v1", "BpmnError")
    assert called["id"] in incident["message"] and "rejected" in incident["message"]


async def test_a_cancelled_called_instance_is_an_incident_whose_retry_calls_again(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "call_pinned", {"amount": 2, "escalate": False})
    first = await _called(api, caller)
    assert (await api.post(f"/instances/{first['id']}/cancel")).status_code == 200
    incident = await _incident(api, caller)
    assert incident["element_id"] == "call_v1" and "cancelled" in incident["message"]

    assert (await api.post(f"/incidents/{incident['id']}/retry", json={"variables": {}})).status_code == 200
    for _ in range(600):  # a fresh call: another called instance (the index lists the cancelled one too)
        listed = (await api.get("/instances", params={"parent_id": caller})).json()["items"]
        if len(listed) == 2:
            break
        await asyncio.sleep(0.05)
    [second] = [child for child in listed if child["id"] != first["id"]]
    await take_and_complete(api, await _open_task(api, second["id"]), {"approved": True})
    assert (await wait_for(api, caller, "completed"))["variables"]["score"] == 4


async def _incident(api: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    for _ in range(600):
        incidents = (await api.get(f"/instances/{instance_id}")).json()["incidents"]
        if incidents:
            return dict(incidents[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no incident in {instance_id}")


async def test_an_escalation_reaches_a_non_interrupting_boundary_and_the_call_goes_on(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "calling_order", {"amount": 3, "escalate": True, "patience": "PT1H"})
    called = await _called(api, caller)
    task = await _open_task(api, called["id"])
    for _ in range(200):  # the reminder branch ran while the call still waits
        state = (await api.get(f"/instances/{caller}")).json()
        if "reminded_end" in state["completed"]:
            break
        await asyncio.sleep(0.05)
    assert "reminded_end" in state["completed"] and "call_review" in state["active"], state
    await take_and_complete(api, task, {"approved": True})
    done = await wait_for(api, caller, "completed")
    assert done["variables"]["reminded"] is True and done["variables"]["score"] == 6
    assert {"remind", "reviewed"} <= set(done["completed"])


async def test_an_interrupting_timer_cancels_the_called_instance(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "calling_order", {"amount": 3, "escalate": False, "patience": "PT2S"})
    called = await _called(api, caller)
    done = await wait_for(api, caller, "completed")
    assert "gave_up" in done["completed"] and "reviewed" not in done["completed"]
    await wait_for(api, called["id"], "cancelled")
    # its task left the inbox with it
    for _ in range(100):
        if not (await api.get("/tasks", params={"instance_id": called["id"]})).json():
            break
        await asyncio.sleep(0.05)
    assert (await api.get("/tasks", params={"instance_id": called["id"]})).json() == []


async def test_cancelling_the_caller_cancels_the_called_instance(api: httpx.AsyncClient, client: Client) -> None:
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "calling_order", {"amount": 3, "escalate": False, "patience": "PT1H"})
    called = await _called(api, caller)
    assert (await api.post(f"/instances/{caller}/cancel")).status_code == 200
    await wait_for(api, caller, "cancelled")
    await wait_for(api, called["id"], "cancelled")
    description = await client.get_workflow_handle(called["id"]).describe()
    assert description.status == WorkflowExecutionStatus.CANCELED


_CALLER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="caller_{label}" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {call}
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="the_call" />
    <bpmn:sequenceFlow id="f2" sourceRef="the_call" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_calls_that_cannot_be_bound_are_refused_at_deploy(api: httpx.AsyncClient) -> None:
    await deploy(api, REVIEW)
    inside = "<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
    cases = {
        "nowhere": (f'<bpmn:callActivity id="the_call" calledElement="nowhere">{inside}</bpmn:callActivity>',
                    "calls process 'nowhere', which is neither in this upload nor deployed"),
        "old": ('<bpmn:callActivity id="the_call" calledElement="called_review" '
                'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" camunda:calledElementBinding="version" '
                f'camunda:calledElementVersion="99">{inside}</bpmn:callActivity>',
                "calls version 99 of process 'called_review'"),
        "tag": ('<bpmn:callActivity id="the_call"><bpmn:extensionElements><zeebe:calledElement '
                'processId="called_review" bindingType="versionTag" versionTag="v1" /></bpmn:extensionElements>'
                f"{inside}</bpmn:callActivity>", "binding 'versionTag' is not supported"),
        "elsewhere": ('<bpmn:callActivity id="the_call"><bpmn:extensionElements><zeebe:calledElement '
                      'processId="called_review" bindingType="deployment" /></bpmn:extensionElements>'
                      f"{inside}</bpmn:callActivity>", "'called_review' is not in this upload"),
    }  # fmt: skip
    for label, (call, message) in cases.items():
        response = await deploy_text(api, f"{label}.bpmn", _CALLER.format(label=label, call=call))
        assert response.status_code == 422, (label, response.text)
        errors = response.json()["detail"]
        assert any(e["element_id"] == "the_call" and message in e["message"] for e in errors), (label, errors)
        listed = await api.get(f"/definitions/caller_{label}")
        assert listed.status_code == 404, (label, listed.text)


async def test_a_called_instance_cancelled_before_it_indexed_itself_still_answers(
    api: httpx.AsyncClient, client: Client
) -> None:
    """Cancelled the moment Temporal knows it, while its first step (writing its own index row) is in
    flight: it still writes the row, then tells its caller, which raises an incident."""
    await deploy(api, REVIEW)
    await deploy(api, ORDER)
    caller = await start(api, "call_pinned", {"amount": 2, "escalate": False})
    for _ in range(3000):
        children = (await client.get_workflow_handle(caller).describe()).raw_description.pending_children
        if children:
            break
        await asyncio.sleep(0.002)
    [child] = children
    await client.get_workflow_handle(child.workflow_id).cancel()
    incident = await _incident(api, caller)
    assert incident["element_id"] == "call_v1" and "cancelled" in incident["message"], incident
    assert (await wait_for(api, child.workflow_id, "cancelled"))["parent_id"] == caller
