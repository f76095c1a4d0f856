"""Event-based gateways on real Temporal: a message races a timer, the first event wins and the
other is withdrawn (the subscription disappears; a late message reaches nobody)."""

from __future__ import annotations

import uuid

import httpx

from tests.api.routes.test_messages import _publish, _subscribed
from tests.helpers import DATA, deploy, start, wait_for


async def test_the_message_wins_the_race(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "event_gateway.bpmn")
    order = uuid.uuid4().hex[:8]
    instance = await start(api, "event_gateway", {"order_id": order, "wait": "PT1H"})
    subscription = await _subscribed(api, instance, "paid")  # named by the catch event after the gateway
    assert (subscription["message_name"], subscription["correlation_key"]) == ("payment", order)
    assert (await wait_for(api, instance, "running"))["active"] == ["race"]
    paid = await _publish(api, "payment", order, amount=42)
    assert paid.status_code == 200, paid.text
    assert paid.json()["delivered"] == [{"instance_id": instance, "element_id": "paid"}]
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"order_id": order, "wait": "PT1H", "amount": 42, "outcome": "shipped"}
    assert done["completed"] == ["start", "race", "paid", "ship", "end_paid"]
    assert (await _publish(api, "payment", order)).status_code == 404  # nobody waits any more
    history = (await api.get(f"/instances/{instance}/history")).json()
    received = [r for r in history if r["action"] == "message.received"]
    assert [(r["element_id"], r["data"]["variables"]) for r in received] == [("paid", {"amount": 42})]


async def test_the_timer_wins_the_race(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "event_gateway.bpmn")
    order = uuid.uuid4().hex[:8]
    instance = await start(api, "event_gateway", {"order_id": order, "wait": "PT1S"})
    done = await wait_for(api, instance, "completed")
    assert done["variables"]["outcome"] == "cancelled"
    assert done["completed"] == ["start", "race", "too_late", "cancel", "end_late"]
    late = await _publish(api, "payment", order)
    assert late.status_code == 404, late.text
    assert (await api.get("/messages/subscriptions", params={"instance_id": instance})).json() == []
