"""POST /messages: correlation, intermediate catch, receive task, boundary and start events, on real Temporal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.helpers import DATA, deploy, deploy_text, start, wait_for, wait_for_tasks


async def _subscribed(api: httpx.AsyncClient, instance: str, element: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until the instance's element is listed as waiting (the projection follows the workflow)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = (await api.get("/messages/subscriptions", params={"instance_id": instance})).json()
        found = [r for r in rows if r["element_id"] == element]
        if found:
            return dict(found[0])
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{instance} never waited at {element}: {rows}")
        await asyncio.sleep(0.1)


async def _publish(api: httpx.AsyncClient, name: str, key: str | None = None, **variables: Any) -> httpx.Response:
    body: dict[str, Any] = {"name": name, "variables": variables}
    if key is not None:
        body["correlation_key"] = key
    return await api.post("/messages", json=body)


async def test_a_message_reaches_only_the_instance_whose_correlation_key_matches(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "messages.bpmn", expect=201)
    first = await start(api, "order_payment", {"order_id": 101}, business_key="ORD-101")
    second = await start(api, "order_payment", {"order_id": 102}, business_key="ORD-102")
    subscription = await _subscribed(api, first, "wait_payment")
    await _subscribed(api, second, "wait_payment")
    assert subscription["message_name"] == "payment-received"
    assert subscription["correlation_key"] == "101"  # the number, as text: keys are compared as strings

    paid = await _publish(api, "payment-received", "101", amount=250)
    assert paid.status_code == 200, paid.text
    assert paid.json()["delivered"] == [{"instance_id": first, "element_id": "wait_payment"}]
    assert paid.json()["started"] == []

    # the first instance moved on to the receive task, correlated by its business key
    await _subscribed(api, first, "wait_shipment")
    state = await wait_for(api, second, "running")
    assert state["active"] == ["wait_payment"]  # the other order is untouched

    again = await _publish(api, "payment-received", "101")
    assert again.status_code == 404
    assert "payment-received" in again.json()["detail"] and "'101'" in again.json()["detail"]

    shipped = await _publish(api, "shipment-confirmed", "ORD-101", carrier="DHL")
    assert shipped.json()["delivered"] == [{"instance_id": first, "element_id": "wait_shipment"}]
    done = await wait_for(api, first, "completed")
    assert done["variables"] == {"order_id": 101, "amount": 250, "carrier": "DHL"}
    assert done["completed"][-3:] == ["wait_payment", "wait_shipment", "end"]

    history = (await api.get(f"/instances/{first}/history")).json()
    received = [e for e in history if e["action"] == "message.received"]
    assert [(e["element_id"], e["data"]["name"], e["data"]["correlation_key"]) for e in received] == [
        ("wait_payment", "payment-received", "101"),
        ("wait_shipment", "shipment-confirmed", "ORD-101"),
    ]
    assert received[0]["actor"] and received[0]["data"]["variables"] == {"amount": 250}
    published = (await api.get("/audit", params={"action": "message.published"})).json()
    assert any(e["data"]["delivered"] == [first] and e["data"]["correlation_key"] == "101" for e in published)

    await _publish(api, "payment-received", "102")
    assert (await wait_for(api, second, "running"))["active"] == ["wait_shipment"]


async def test_a_message_boundary_event_interrupts_the_user_task(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "messages.bpmn")
    instance = await start(api, "order_review", {"order_id": "A7"})
    [task] = await wait_for_tasks(api, instance)
    await _subscribed(api, instance, "cancelled")

    cancelled = await _publish(api, "order-cancelled", "A7", reason="customer")
    assert cancelled.json()["delivered"] == [{"instance_id": instance, "element_id": "cancelled"}]
    done = await wait_for(api, instance, "completed")
    assert "withdrawn" in done["completed"] and "reviewed" not in done["completed"]
    assert done["variables"]["reason"] == "customer"
    assert (await api.get(f"/tasks/{task['id']}")).json()["state"] == "cancelled"
    # nothing waits any more: the subscription went with the instance
    assert (await api.get("/messages/subscriptions", params={"instance_id": instance})).json() == []


async def test_completing_the_task_first_withdraws_the_boundary_subscription(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "messages.bpmn")
    instance = await start(api, "order_review", {"order_id": "B8"})
    [task] = await wait_for_tasks(api, instance)
    await _subscribed(api, instance, "cancelled")
    assert (await api.post(f"/tasks/{task['id']}/complete", json={"variables": {}})).status_code == 200
    await wait_for(api, instance, "completed")
    late = await _publish(api, "order-cancelled", "B8")
    assert late.status_code == 404


async def test_a_message_start_event_starts_an_instance_with_the_message_data(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "messages.bpmn")
    refused = await api.post("/instances", json={"definition_key": "order_intake"})
    assert refused.status_code == 409
    assert "order-placed" in refused.json()["detail"] and "POST /messages" in refused.json()["detail"]

    placed = await _publish(api, "order-placed", "WEB-9", sku="X1", qty=2)
    assert placed.status_code == 200, placed.text
    [started] = placed.json()["started"]
    assert started["definition_key"] == "order_intake"
    instance = started["instance_id"]
    [task] = await wait_for_tasks(api, instance)
    assert task["element_id"] == "handle"
    state = await wait_for(api, instance, "running")
    assert state["business_key"] == "WEB-9"
    assert state["variables"] == {"sku": "X1", "qty": 2}
    assert "placed" in state["completed"]
    history = (await api.get(f"/instances/{instance}/history")).json()
    assert [e["data"]["name"] for e in history if e["action"] == "message.received"] == ["order-placed"]
    assert (await api.post(f"/tasks/{task['id']}/complete", json={"variables": {}})).status_code == 200
    assert (await wait_for(api, instance, "completed"))["completed"][-1] == "handled"


async def test_two_concurrent_messages_for_one_waiting_element_deliver_once(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "messages.bpmn")
    instance = await start(api, "order_payment", {"order_id": 555}, business_key="ORD-555")
    await _subscribed(api, instance, "wait_payment")
    answers = await asyncio.gather(
        _publish(api, "payment-received", "555", n=1), _publish(api, "payment-received", "555", n=2)
    )
    assert sorted(a.status_code for a in answers) == [200, 404]
    state = await wait_for(api, instance, "running")
    winner = next(a for a in answers if a.status_code == 200)
    assert state["variables"]["n"] == json.loads(winner.request.content)["variables"]["n"]
    assert state["active"] == ["wait_shipment"]


async def test_a_message_nobody_waits_for_is_a_404_naming_it(api: httpx.AsyncClient) -> None:
    answer = await _publish(api, "no-such-message")
    assert answer.status_code == 404
    assert "no-such-message" in answer.json()["detail"] and "without a correlation key" in answer.json()["detail"]


async def test_bad_message_requests_are_422_naming_the_field(api: httpx.AsyncClient) -> None:
    for body, field in (
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "variables": {"__class__": 1}}, "variables"),
        ({"name": "x", "correlation_key": "k" * 256}, "correlation_key"),
        ({"name": "x", "variables": [1]}, "variables"),
    ):
        answer = await api.post("/messages", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in str(answer.json()["detail"][0]["loc"]), answer.text


_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  {messages}
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {element}
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />
    <bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""
_NAMED = '<bpmn:message id="m" name="ping" />'


async def test_message_models_the_engine_cannot_run_are_refused_at_deploy(api: httpx.AsyncClient) -> None:
    cases = {
        "unsafe payload": (
            _NAMED,
            '<bpmn:intermediateThrowEvent id="x"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            '<bpmn:messageEventDefinition messageRef="m"><bpmn:extensionElements><spiffworkflow:messagePayload '
            'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core">__import__("os")'
            "</spiffworkflow:messagePayload></bpmn:extensionElements></bpmn:messageEventDefinition>"
            "</bpmn:intermediateThrowEvent>",
            "parameter 'variables'",
        ),
        "no message": (
            "",
            '<bpmn:intermediateCatchEvent id="x"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            "<bpmn:messageEventDefinition /></bpmn:intermediateCatchEvent>",
            "needs a messageRef",
        ),
        "bad key": (
            '<bpmn:message id="m" name="ping"><bpmn:extensionElements>'
            '<zeebe:subscription correlationKey="=order.__class__" /></bpmn:extensionElements></bpmn:message>',
            '<bpmn:intermediateCatchEvent id="x"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            '<bpmn:messageEventDefinition messageRef="m" /></bpmn:intermediateCatchEvent>',
            "correlation key",
        ),
        "send task without a message": (
            _NAMED,
            '<bpmn:sendTask id="x"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:sendTask>',
            "needs a messageRef",
        ),
    }
    for label, (messages, element, expected) in cases.items():
        answer = await deploy_text(api, f"{label}.bpmn", _PROCESS.format(messages=messages, element=element))
        assert answer.status_code == 422, (label, answer.text)
        [error] = answer.json()["detail"]
        # a correlation key is written on the bpmn:message: that is the element named
        assert error["element_id"] == ("m" if label == "bad key" else "x") and error["line"], (label, error)
        assert expected in error["message"], (label, error)
