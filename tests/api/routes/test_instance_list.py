"""GET /instances: filters, keyset pagination, statuses mirrored from Temporal."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.helpers import EXAMPLES, deploy, http_server, start, wait_for, wait_for_tasks


async def _list(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get("/instances", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_filters_and_pages(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    batch = uuid.uuid4().hex[:8]
    with http_server() as (url, _):
        small = [
            await start(
                api, "order_approval", {"price": 1, "quantity": 1, "notify_url": url}, business_key=f"{batch}-s{i}"
            )
            for i in range(3)
        ]
        big = await start(
            api, "order_approval", {"price": 900, "quantity": 1, "notify_url": url}, business_key=f"{batch}-b"
        )
        for instance in small:
            await wait_for(api, instance, "completed")
        await wait_for_tasks(api, big)

        # closures reach the index through the status projector, within about a second
        for _ in range(100):
            completed = {i["id"] for i in (await _list(api, status="completed", limit=500))["items"]}
            if set(small) <= completed:
                break
            await asyncio.sleep(0.1)
        assert set(small) <= completed
        running = {i["id"] for i in (await _list(api, status="running", limit=500))["items"]}
        assert big in running and not set(small) & running

        [only] = (await _list(api, business_key=f"{batch}-b"))["items"]
        assert (only["id"], only["status"], only["definition_key"]) == (big, "running", "order_approval")
        assert only["started_by"] == "admin" and only["closed_at"] is None

        # newest first, pages of two, no row twice, none missing
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"definition_key": "order_approval", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = await _list(api, **params)
            seen.extend(i["id"] for i in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ours = [i for i in seen if i in {*small, big}]
        assert ours == [big, *reversed(small)]
        assert len(seen) == len(set(seen))

    assert (await api.get("/instances", params={"cursor": "bm90IGEgY3Vyc29y"})).status_code == 422
    assert (await api.get("/instances", params={"status": "sleeping"})).status_code == 422
    assert (await api.get("/instances", params={"started_after": "yesterday"})).status_code == 422
    future = await _list(api, started_after="2999-01-01T00:00:00Z")
    assert future == {"items": [], "next_cursor": None}
