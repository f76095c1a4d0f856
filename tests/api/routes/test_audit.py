"""The audit trail of an instance: complete, in order, once each, and consistent with Temporal's history."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from temporalio.client import Client

from tests.helpers import EXAMPLES, deploy, http_server, start, wait_for, wait_for_tasks


async def _history(api: httpx.AsyncClient, instance: str, until: str = "instance.completed") -> list[dict[str, Any]]:
    for _ in range(100):  # a completed instance's last entries arrive with the status projector
        response = await api.get(f"/instances/{instance}/history")
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()
        if any(r["action"] == until for r in records):
            return records
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {until} in the history of {instance}: {records}")


async def test_an_instance_leaves_a_complete_ordered_trail(api: httpx.AsyncClient, client: Client) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    with http_server() as (url, _):
        instance = await start(api, "order_approval", {"price": 60, "quantity": 2, "notify_url": url})
        [task] = await wait_for_tasks(api, instance)
        await api.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": True, "note": "ok"}})
        await wait_for(api, instance, "completed")
        records = await _history(api, instance)

    actions = [(r["action"], r["element_id"]) for r in records]
    assert actions[0] == ("instance.start_requested", None)
    assert actions[1] == ("instance.started", None)
    assert actions[-1] == ("instance.completed", None)
    elements = [(a, e) for a, e in actions if a.startswith("element.")]
    assert elements == [
        (f"element.{step}", element)
        for element in ["start", "compute_total", "needs_approval", "approve", "merge", "notify", "end"]
        for step in ("entered", "completed")
    ]
    engine_seqs = [r["instance_seq"] for r in records if r["instance_seq"] is not None]
    assert engine_seqs == sorted(engine_seqs) and len(engine_seqs) == len(set(engine_seqs))  # in order, once

    approved = next(r for r in records if r["action"] == "element.completed" and r["element_id"] == "approve")
    assert approved["actor"] == "admin"
    assert approved["data"] == {"variables": {"approved": True, "note": "ok"}}
    notified = next(r for r in records if r["action"] == "element.completed" and r["element_id"] == "notify")
    assert notified["data"]["result"]["status"] == 200
    started = records[1]
    assert started["actor"] == "admin" and started["data"]["variables"]["price"] == 60

    # Temporal's history is the ground truth: every service task and user task completion in the
    # trail is an activity or update completion there, and nothing more.
    history = await client.get_workflow_handle(instance).fetch_history()
    activities: Counter[str] = Counter()
    scheduled = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_completed_event_attributes"):
            activities[scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]] += 1
    updates = sum(1 for e in history.events if e.HasField("workflow_execution_update_completed_event_attributes"))
    service_done = [
        r for r in records if r["action"] == "element.completed" and r["element_type"] == "ExternalServiceTask"
    ]
    script_done = [
        r for r in records if r["action"] == "element.completed" and r["element_type"] == "SandboxedScriptTask"
    ]
    user_done = [r for r in records if r["action"] == "element.completed" and r["element_type"] == "UserTask"]
    # every service and script task completed in the trail is one activity completed in the history
    assert len(service_done) == sum(
        n for name, n in activities.items() if name.split(".")[0] not in ("engine", "sandbox")
    )
    assert len(script_done) == activities["sandbox.script"]
    assert len(user_done) == updates == 1

    verdict = (await api.get("/audit/verify")).json()
    assert verdict["ok"] is True, verdict["problems"]
    assert verdict["checked"] >= len(records)


async def test_api_operations_are_audited(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    instance = await start(api, "order_approval", {"price": 900, "quantity": 1, "notify_url": "http://127.0.0.1:9"})
    await wait_for_tasks(api, instance)
    await api.patch(f"/instances/{instance}/variables", json={"variables": {"priority": "high"}})
    await api.post(f"/instances/{instance}/cancel")
    records = await _history(api, instance, until="instance.cancelled")
    actions = [r["action"] for r in records]
    for action in ("instance.start_requested", "instance.variables_set", "variables.set",
                   "instance.cancel_requested", "instance.cancelled"):  # fmt: skip
        assert actions.count(action) == 1, (action, actions)
    assert ("element.cancelled", "approve") in [(r["action"], r["element_id"]) for r in records]
    search = (await api.get("/audit", params={"instance_id": instance, "action": "instance.variables_set"})).json()
    assert [r["data"] for r in search] == [{"variables": {"priority": "high"}}]
    assert (await api.get("/instances/nope/history")).status_code == 404
