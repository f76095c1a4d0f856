"""Incidents, BPMN errors from workers, cancelling and changing variables of running instances."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from bpmn.operators import PoolConfig, registry
from tests.helpers import DATA, EXAMPLES, deploy, http_server, start, wait_for, wait_for_tasks
from workflows.contracts import BPMN_ERROR, ServiceTaskInput

TEST_QUEUE = "test-" + uuid.uuid4().hex[:8]
registry.register("test", PoolConfig(task_queue=TEST_QUEUE, max_attempts=1))


@activity.defn(name="test.lookup")
async def lookup(inp: ServiceTaskInput) -> dict[str, Any]:
    code = inp.params["code"]
    if code:
        raise ApplicationError(f"customer lookup says {code}", code, type=BPMN_ERROR, non_retryable=True)
    return {"customer": 7}


@pytest.fixture(scope="module")
async def test_pool(client: Client) -> AsyncIterator[None]:
    async with Worker(client, task_queue=TEST_QUEUE, activities=[lookup]):
        yield


async def _incidents(api: httpx.AsyncClient, instance: str, count: int = 1, status: str = "open") -> list[Any]:
    for _ in range(300):
        found: list[Any] = (await api.get("/incidents", params={"instance_id": instance, "status": status})).json()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {status} incident for {instance}")


async def test_exhausted_retries_raise_an_incident_that_a_retry_resolves(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "incidents.bpmn")
    with http_server() as (url, requests):
        instance = await start(api, "flaky_call", {"url": f"{url}/fail"})
        [incident] = await _incidents(api, instance)
        assert incident["element_id"] == "call"
        assert "HTTP 500" in incident["message"]
        running = await wait_for(api, instance, "running")
        assert [i["id"] for i in running["incidents"]] == [incident["id"]]
        assert running["active"] == ["call"]

        retried = await api.post(f"/incidents/{incident['id']}/retry", json={"variables": {"url": f"{url}/ok"}})
        assert retried.status_code == 200, retried.text
        final = await wait_for(api, instance, "completed")
        again = await api.post(f"/incidents/{incident['id']}/retry", json={})
    assert final["variables"]["status"] == 200
    assert final["incidents"] == []
    assert [r["path"] for r in requests] == ["/fail", "/ok"]
    assert again.status_code == 409
    [resolved] = await _incidents(api, instance, status="resolved")
    assert resolved["id"] == incident["id"]
    assert (await api.get("/incidents", params={"instance_id": instance})).json() == []
    assert (await api.post("/incidents/nope/retry", json={})).status_code == 404


async def test_cancelling_an_instance_closes_its_incidents(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "incidents.bpmn")
    with http_server() as (url, _):
        instance = await start(api, "flaky_call", {"url": f"{url}/fail"})
        await _incidents(api, instance)
        cancelled = await api.post(f"/instances/{instance}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    await _incidents(api, instance, status="resolved")
    assert (await api.post(f"/instances/{instance}/cancel")).status_code == 409
    assert (await api.post("/instances/nope/cancel")).status_code == 404


async def test_a_bpmn_error_from_a_worker_takes_the_error_boundary(api: httpx.AsyncClient, test_pool: None) -> None:
    await deploy(api, DATA / "incidents.bpmn")
    found = await wait_for(api, await start(api, "lookup", {"code": ""}), "completed")
    assert found["variables"]["customer"] == 7
    assert "created" not in found["variables"]
    missing = await wait_for(api, await start(api, "lookup", {"code": "NOT_FOUND"}), "completed")
    assert missing["variables"]["created"] is True
    assert "not_found" in missing["completed"] and "found" not in missing["completed"]
    # a code no event catches becomes an incident, not a silent end
    instance = await start(api, "lookup", {"code": "TEAPOT"})
    [incident] = await _incidents(api, instance)
    assert incident["error_type"] == BPMN_ERROR and "TEAPOT" in incident["message"]


async def test_variables_of_a_running_instance_can_be_changed(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    with http_server() as (url, requests):
        instance = await start(api, "order_approval", {"price": 500, "quantity": 1, "notify_url": f"{url}/old"})
        [task] = await wait_for_tasks(api, instance)
        patched = await api.patch(f"/instances/{instance}/variables", json={"variables": {"notify_url": f"{url}/new"}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["variables"]["notify_url"] == f"{url}/new"
        bad = await api.patch(f"/instances/{instance}/variables", json={"variables": {"_x": 1}})
        assert bad.status_code == 422
        await api.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": True}})
        final = await wait_for(api, instance, "completed")
    assert [r["path"] for r in requests] == ["/new"]
    assert final["variables"]["notify_url"] == f"{url}/new"
    ended = await api.patch(f"/instances/{instance}/variables", json={"variables": {"x": 1}})
    assert ended.status_code == 409
