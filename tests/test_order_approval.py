"""The sample order process, end to end through the REST API, the engine and the connector pool."""

from __future__ import annotations

import httpx

from tests.helpers import EXAMPLES, deploy, http_server, start, wait_for, wait_for_tasks


async def test_large_order_waits_for_approval_then_calls_the_warehouse(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    with http_server() as (url, requests):
        instance = await start(api, "order_approval", {"price": 60, "quantity": 2, "notify_url": f"{url}/notify"})
        [task] = await wait_for_tasks(api, instance)
        assert task["element_id"] == "approve"
        assert task["name"] == "Approve order"

        running = (await api.get(f"/instances/{instance}")).json()
        assert running["status"] == "running"
        assert running["active"] == ["approve"]
        assert running["variables"]["total"] == 120

        done = await api.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": True}})
        assert done.status_code == 200, done.text

        final = await wait_for(api, instance, "completed")
    assert final["variables"]["approved"] is True
    assert final["variables"]["notification"]["status"] == 200
    assert final["variables"]["notification"]["json"]["path"] == "/notify"
    assert final["completed"] == [
        "start",
        "compute_total",
        "needs_approval",
        "approve",
        "merge",
        "notify",
        "end",
    ]
    assert [r["path"] for r in requests] == ["/notify"]
    # completing twice: the task is gone
    again = await api.post(f"/tasks/{task['id']}/complete", json={"variables": {}})
    assert again.status_code == 409
    assert (await api.get("/tasks", params={"instance_id": instance})).json() == []


async def test_small_order_is_approved_automatically(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    with http_server() as (url, _):
        instance = await start(api, "order_approval", {"price": 5, "quantity": 2, "notify_url": url})
        final = await wait_for(api, instance, "completed")
    assert final["variables"]["approved"] is True
    assert "approve" not in final["completed"]
    assert "auto_approve" in final["completed"]
