"""Sending messages on real Temporal: send tasks, message intermediate throw events and message end
events publish through the platform to the instances waiting for them (by correlation key) and to
message start events; a message nobody receives is retried, then becomes an incident a retry resolves."""

from __future__ import annotations

import uuid

import httpx

from tests.api.routes.test_incidents import _incidents
from tests.api.routes.test_messages import _subscribed
from tests.helpers import DATA, completed_history, completion, deploy, start, wait_for


async def test_send_task_throw_and_end_events_reach_receivers_and_start_processes(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "message_send.bpmn")
    order = uuid.uuid4().hex[:8]
    other = await start(api, "order_shipper", {"order_id": f"{order}-other"})
    shipper = await start(api, "order_shipper", {"order_id": order})
    await _subscribed(api, shipper, "await_ship")
    sender = await start(api, "order_sender", {"order_id": order, "item": "valve", "amount": 120},
                         business_key=f"ORD-{order}")  # fmt: skip
    done = await wait_for(api, sender, "completed")
    assert done["completed"] == ["start", "notify", "paid", "closed"]
    assert done["variables"] == {"order_id": order, "item": "valve", "amount": 120}  # receipts stay out of the data
    # the send task's key is the message's correlationKey over the sender's data; its variables its inputs
    shipped = await wait_for(api, shipper, "completed")
    assert shipped["variables"] == {"order_id": order, "item": "valve"}
    assert shipped["completed"] == ["start_s", "await_ship", "await_close", "end_s"]
    assert (await wait_for(api, other, "running"))["active"] == ["await_ship"]  # another key: not reached
    records = await completed_history(api, sender)
    notify = completion(records, "notify")["data"]["result"]
    assert notify["delivered"] == [{"instance_id": shipper, "element_id": "await_ship"}]
    assert (notify["message"], notify["correlation_key"], notify["started"]) == ("ship-order", order, [])
    # without a key expression the key is the sender's business key; a start event starts a process
    paid = completion(records, "paid")["data"]["result"]
    assert (paid["correlation_key"], paid["delivered"]) == (f"ORD-{order}", [])
    # the start event of payment_ledger (other tests may deploy more processes starting on it)
    [started] = [s for s in paid["started"] if s["definition_key"] == "payment_ledger"]
    ledger = await wait_for(api, started["instance_id"], "completed")
    assert ledger["variables"] == {"amount": 120}
    assert (await api.get(f"/instances/{started['instance_id']}")).json()["business_key"] == f"ORD-{order}"
    received = next(r for r in await completed_history(api, shipper) if r["element_id"] == "await_close"
                    and r["action"] == "message.received")  # fmt: skip
    assert received["actor"] == f"instance/{sender}"
    await api.post(f"/instances/{other}/cancel")


async def test_a_message_nobody_receives_becomes_an_incident_that_a_retry_resolves(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "message_send.bpmn")
    sender = await start(api, "lonely_sender")
    [incident] = await _incidents(api, sender)
    assert incident["element_id"] == "shout"
    assert "message 'nobody-listens' with no correlation key reached nobody" in incident["message"]
    listener = await start(api, "lonely_listener")
    await _subscribed(api, listener, "hear")
    retried = await api.post(f"/incidents/{incident['id']}/retry", json={})
    assert retried.status_code == 200, retried.text
    assert (await wait_for(api, sender, "completed"))["completed"] == ["start_l", "shout", "end_l"]
    assert (await wait_for(api, listener, "completed"))["completed"] == ["start_ll", "hear", "end_ll"]
