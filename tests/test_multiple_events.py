"""Multiple catch events on real Temporal (tests/data/multiple_events.bpmn): an intermediate event that
any one of a message and a signal (or a timer) fires, a parallel multiple one that waits for both, and
a multiple boundary event; multiple throw events are refused at deploy (SpiffWorkflow threw only one of them)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.helpers import DATA, deploy, deploy_text, start, wait_for, wait_for_tasks

MODEL = DATA / "multiple_events.bpmn"


async def _subscriptions(api: httpx.AsyncClient, kind: str, instance: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await api.get(f"/{kind}/subscriptions", params={"instance_id": instance})).json()
    return rows


async def _until_listed(api: httpx.AsyncClient, kind: str, instance: str, element: str) -> None:
    for _ in range(300):  # the projection publishes subscriptions a moment after the instance waits
        if any(r["element_id"] == element for r in await _subscriptions(api, kind, instance)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{instance} never listed a {kind} subscription of {element}")


async def _broadcast(api: httpx.AsyncClient, name: str, instance: str, **variables: Any) -> list[str]:
    sent = await api.post("/signals", json={"name": name, "variables": variables})
    assert sent.status_code == 200, sent.text
    return [e for d in sent.json()["delivered"] if d["instance_id"] == instance for e in d["element_ids"]]


async def test_a_multiple_catch_event_fires_on_a_message_or_on_a_signal(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    paid = await start(api, "payment_or_waiver", {}, business_key="INV-1")
    await _until_listed(api, "messages", paid, "settled")
    sent = await api.post("/messages", json={"name": "paid", "correlation_key": "INV-1", "variables": {"amount": 3}})
    assert sent.status_code == 200, sent.text
    assert [d["element_id"] for d in sent.json()["delivered"]] == ["settled"]
    done = await wait_for(api, paid, "completed")
    assert done["variables"] == {"amount": 3} and done["completed"] == ["p_start", "settled", "p_end"], done

    waived = await start(api, "payment_or_waiver", {}, business_key="INV-2")
    await _until_listed(api, "signals", waived, "settled")
    assert await _broadcast(api, "waived", waived, who="ops") == ["settled"]
    done = await wait_for(api, waived, "completed")
    assert done["variables"] == {"who": "ops"}, done  # the signal's variables, kept
    assert await _subscriptions(api, "messages", waived) == []  # the message is not awaited any more


async def test_a_parallel_multiple_catch_event_waits_for_each_of_its_events(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "cleared_and_audited", {}, business_key="TX-9")
    await _until_listed(api, "messages", instance, "both")
    sent = await api.post("/messages", json={"name": "cleared", "correlation_key": "TX-9", "variables": {"fee": 1}})
    assert sent.status_code == 200, sent.text
    await asyncio.sleep(0.5)
    state = (await api.get(f"/instances/{instance}")).json()
    assert state["status"] == "running" and state["active"] == ["both"], state  # the signal is still awaited
    again = await api.post("/messages", json={"name": "cleared", "correlation_key": "TX-9"})
    assert again.status_code == 404, again.text  # seen once: not subscribed again
    for _ in range(300):
        reached = await _broadcast(api, "audited", instance, auditor="kim")
        if reached:
            break
        await asyncio.sleep(0.1)
    assert reached == ["both"]
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"fee": 1, "auditor": "kim"}, done


async def test_a_multiple_boundary_event_interrupts_on_either_event(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "documents", {})
    [task] = await wait_for_tasks(api, instance)
    await _until_listed(api, "signals", instance, "stopped")
    assert await _broadcast(api, "shutdown", instance, why="maintenance") == ["stopped"]
    done = await wait_for(api, instance, "completed")
    assert done["completed"] == ["d_start", "stopped", "d_stopped"] and done["variables"] == {"why": "maintenance"}
    assert (await api.post(f"/tasks/{task['id']}/complete", json={"variables": {}})).status_code in (404, 409)


async def test_a_multiple_catch_event_fires_on_its_timer_when_no_message_comes(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "reply_or_timeout", {}, business_key="R-1")
    await _until_listed(api, "messages", instance, "reply_or_time")  # the message is awaited beside the timer
    done = await wait_for(api, instance, "completed")  # one second later
    assert done["completed"] == ["r_start", "reply_or_time", "r_end"], done
    assert await _subscriptions(api, "messages", instance) == []


async def test_a_multiple_throw_event_is_refused_naming_it(api: httpx.AsyncClient) -> None:
    xml = MODEL.read_text().replace(
        '<bpmn:endEvent id="p_end"><bpmn:incoming>p2</bpmn:incoming></bpmn:endEvent>',
        '<bpmn:endEvent id="p_end"><bpmn:incoming>p2</bpmn:incoming><bpmn:messageEventDefinition '
        'messageRef="m_cleared" /><bpmn:signalEventDefinition signalRef="s_audited" /></bpmn:endEvent>',
    )
    refused = await deploy_text(api, "throws.bpmn", xml)
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["element_id"] == "p_end" and "multiple throw events are not supported" in problem["message"]
