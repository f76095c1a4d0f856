"""Conditional events on real Temporal: a catch event waits until its condition holds over the
process data, and a non-interrupting conditional boundary event fires each time its condition
becomes true while the task is open. Data changes through PATCH /instances/{id}/variables."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.helpers import DATA, completed_history, deploy, start, take_and_complete, wait_for, wait_for_tasks


async def _until_completed(api: httpx.AsyncClient, instance: str, element: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        body: dict[str, Any] = (await api.get(f"/instances/{instance}")).json()
        if element in body["completed"]:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"{element} never completed: {body}"
        await asyncio.sleep(0.1)


async def test_conditions_fire_when_the_data_makes_them_true(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "conditional.bpmn")
    instance = await start(api, "conditional_wait", {"stock": 1, "quantity": 3, "amount": 10})
    [review] = await wait_for_tasks(api, instance)
    state = (await api.get(f"/instances/{instance}")).json()
    assert set(state["active"]) == {"in_stock", "review", "too_big"}  # both conditions false: waiting
    # the amount grows past the limit while the review is open: the boundary event fires, the review stays
    changed = await api.patch(f"/instances/{instance}/variables", json={"variables": {"amount": 2000}})
    assert changed.status_code == 200, changed.text
    state = await _until_completed(api, instance, "flag_end")
    assert "in_stock" in state["active"] and "review" in state["active"]
    assert state["variables"]["flagged"] is True
    # it fires again each time the condition becomes true, not while it stays true (as in Camunda)
    for amount in (3000, 500, 4000):
        changed = await api.patch(f"/instances/{instance}/variables", json={"variables": {"amount": amount}})
        assert changed.status_code == 200, changed.text
    # stock arrives: the shipment goes
    await api.patch(f"/instances/{instance}/variables", json={"variables": {"stock": 5}})
    await _until_completed(api, instance, "ship")
    assert (await take_and_complete(api, review, {})).status_code == 200
    done = await wait_for(api, instance, "completed")
    assert {"in_stock", "ship", "too_big", "flag", "review", "end"} <= set(done["completed"])
    history = await completed_history(api, instance)
    flags = [r for r in history if r["action"] == "element.completed" and r["element_id"] == "flag"]
    assert len(flags) == 2, flags  # at 2000 and at 4000; not at 3000 (still true), nor at 500


async def test_a_condition_true_on_arrival_fires_at_once(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "conditional.bpmn")
    instance = await start(api, "conditional_wait", {"stock": 9, "quantity": 3, "amount": 5000})
    await _until_completed(api, instance, "ship")
    state = await _until_completed(api, instance, "flag")  # its script runs beside ship's: either may end first
    assert {"in_stock", "too_big", "flag"} <= set(state["completed"])
