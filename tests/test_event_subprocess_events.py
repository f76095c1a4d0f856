"""Message and signal event subprocesses at the process level, on real Temporal
(tests/data/event_subprocess_events.bpmn): they listen while the process runs, a non-interrupting one
runs beside the flow once per event, an interrupting one ends the rest of the process, and none listens
once the process has ended."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bpmn.definitions import ModelValidationError, validate_upload
from tests.helpers import DATA, completed_history, deploy, start, take_and_complete, wait_for, wait_for_tasks

MODEL = DATA / "event_subprocess_events.bpmn"


async def _subscriptions(api: httpx.AsyncClient, instance: str, kind: str, count: int) -> list[dict[str, Any]]:
    for _ in range(300):  # published by the projection a moment after the instance starts listening
        rows: list[dict[str, Any]] = (await api.get(f"/{kind}/subscriptions", params={"instance_id": instance})).json()
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{instance} lists {rows}, expected {count} {kind} subscriptions")


async def _send(api: httpx.AsyncClient, name: str, key: str, **variables: Any) -> httpx.Response:
    """POST /messages, again while the instance's subscription for it is not listed yet."""
    for _ in range(300):
        sent = await api.post("/messages", json={"name": name, "correlation_key": key, "variables": variables})
        if sent.status_code != 404:
            return sent
        await asyncio.sleep(0.1)
    return sent


async def test_message_and_signal_event_subprocesses_listen_while_the_process_runs(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "shipment", {"order_id": "A-1"})
    await wait_for_tasks(api, instance)  # the packing
    messages = await _subscriptions(api, instance, "messages", 2)
    assert sorted((r["element_id"], r["message_name"], r["correlation_key"]) for r in messages) == [
        ("address_changed", "address-changed", "A-1"),
        ("cancelled", "order-cancelled", "A-1"),
    ]  # the key is the correlation key expression over the process's data
    signals = await _subscriptions(api, instance, "signals", 2)
    assert sorted(r["element_id"] for r in signals) == ["price_updated", "recalled"]

    # a non-interrupting message event subprocess: each message its own run, beside the packing
    for street in ("Elm St 1", "Oak St 2"):
        sent = await _send(api, "address-changed", "A-1", street=street)
        assert sent.status_code == 200, sent.text
        assert [d["element_id"] for d in sent.json()["delivered"]] == ["address_changed"], sent.json()
    open_tasks = await wait_for_tasks(api, instance, count=3)
    assert sorted(t["element_id"] for t in open_tasks) == ["pack", "relabel", "relabel"], open_tasks

    # a non-interrupting signal event subprocess runs beside it too
    for _ in range(300):
        broadcast = (await api.post("/signals", json={"name": "price-update", "variables": {"pct": 5}})).json()
        reached = {d["instance_id"]: d["element_ids"] for d in broadcast["delivered"]}
        if instance in reached:
            break
        await asyncio.sleep(0.1)
    assert reached[instance] == ["price_updated"], broadcast

    for task in open_tasks:
        assert (await take_and_complete(api, task, {})).status_code == 200
    done = await wait_for(api, instance, "completed")
    assert done["variables"]["pct"] == 5 and done["variables"]["repriced"] is True, done
    assert done["variables"]["street"] in ("Elm St 1", "Oak St 2"), done
    assert {"pack", "shipped", "relabel", "relabelled", "on_address", "reprice", "on_price"} <= set(done["completed"])
    assert not {"refund", "quarantine"} & set(done["completed"]), done
    # the process has ended: nothing listens any more
    assert (await api.post("/messages", json={"name": "address-changed", "correlation_key": "A-1"})).status_code == 404
    assert (await api.get("/messages/subscriptions", params={"instance_id": instance})).json() == []
    history = await completed_history(api, instance)
    received = [(r["element_id"], r["data"]["variables"]) for r in history if r["action"] == "message.received"]
    assert received == [("address_changed", {"street": "Elm St 1"}), ("address_changed", {"street": "Oak St 2"})]
    assert [r["element_id"] for r in history if r["action"] == "signal.received"] == ["price_updated"]


async def test_an_interrupting_message_event_subprocess_ends_the_rest_of_the_process(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "shipment", {"order_id": "A-2"})
    [pack] = await wait_for_tasks(api, instance)
    other = await start(api, "shipment", {"order_id": "A-3"})  # correlated by its own order id: untouched
    sent = await _send(api, "order-cancelled", "A-2", reason="customer")
    assert sent.status_code == 200, sent.text
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"order_id": "A-2", "reason": "customer", "refunded": True}, done
    assert "pack" not in done["completed"] and {"cancelled", "refund", "on_cancel"} <= set(done["completed"])
    assert (await api.get("/tasks", params={"instance_id": instance})).json() == []  # the packing was withdrawn
    assert (await api.post(f"/tasks/{pack['id']}/complete", json={"variables": {}})).status_code in (404, 409)
    assert (await api.get(f"/instances/{other}")).json()["status"] == "running"
    assert (await api.post(f"/instances/{other}/cancel")).status_code == 200


async def test_an_interrupting_signal_event_subprocess_ends_what_runs_beside_it_too(api: httpx.AsyncClient) -> None:
    await deploy(api, MODEL)
    instance = await start(api, "shipment", {"order_id": "A-4"})
    assert (await _send(api, "address-changed", "A-4", street="Pine St 3")).status_code == 200
    await wait_for_tasks(api, instance, count=2)  # the packing and a relabel
    for _ in range(300):
        broadcast = (await api.post("/signals", json={"name": "recall", "variables": {"lot": 7}})).json()
        if instance in {d["instance_id"] for d in broadcast["delivered"]}:
            break
        await asyncio.sleep(0.1)
    done = await wait_for(api, instance, "completed")
    assert done["variables"]["quarantined"] is True and done["variables"]["lot"] == 7, done
    assert not {"pack", "relabel", "shipped"} & set(done["completed"]), done
    assert (await api.get("/tasks", params={"instance_id": instance})).json() == []


def _refusal(xml: str) -> list[tuple[str | None, str]]:
    with pytest.raises(ModelValidationError) as refused:
        validate_upload({"m.bpmn": xml.encode()})
    return [(e.element_id, e.message) for e in refused.value.errors]


@pytest.mark.backend_free
def test_event_subprocesses_nothing_would_start_are_refused_naming_their_start_event() -> None:
    xml = MODEL.read_text()
    # nested in a subprocess, nothing listens for them (the process level does)
    packing = (
        '<bpmn:subProcess id="pack"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
        '<bpmn:startEvent id="ps"><bpmn:outgoing>pf</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="pf" sourceRef="ps" targetRef="pe" />'
        '<bpmn:endEvent id="pe"><bpmn:incoming>pf</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:subProcess id="inner" triggeredByEvent="true"><bpmn:startEvent id="inner_start">'
        "<bpmn:outgoing>i1</bpmn:outgoing>{definition}</bpmn:startEvent>"
        '<bpmn:sequenceFlow id="i1" sourceRef="inner_start" targetRef="inner_end" />'
        '<bpmn:endEvent id="inner_end"><bpmn:incoming>i1</bpmn:incoming></bpmn:endEvent></bpmn:subProcess>'
        "</bpmn:subProcess>"
    )
    task = (
        '<bpmn:userTask id="pack" name="Pack the order"><bpmn:incoming>f1</bpmn:incoming>'
        "<bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>"
    )
    assert task in xml
    for definition, kind in (
        ('<bpmn:messageEventDefinition messageRef="m_cancel" />', "message"),
        ('<bpmn:signalEventDefinition signalRef="s_recall" />', "signal"),
        ("<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>", "timer"),
    ):
        [(element, message)] = _refusal(xml.replace(task, packing.format(definition=definition)))
        assert element == "inner_start" and f"{kind} start events of subprocesses are not supported" in message
    # one event subprocess listens for one event
    either = xml.replace(
        '<bpmn:messageEventDefinition messageRef="m_cancel" />',
        '<bpmn:messageEventDefinition messageRef="m_cancel" /><bpmn:signalEventDefinition signalRef="s_recall" />',
    )
    [(element, message)] = _refusal(either)
    assert element == "cancelled" and "multiple start events of event subprocesses" in message
