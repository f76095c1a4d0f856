"""Signals on real Temporal: POST /signals and throw events broadcast to every waiting instance
(intermediate catch, boundary events interrupting or not, their own instance's catchers), start the
processes with a signal start event, and models that cannot run are refused at deploy."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.helpers import DATA, completed_history, deploy, deploy_text, start, wait_for, wait_for_tasks


async def _signal_waits(api: httpx.AsyncClient, instance: str, count: int = 1, timeout: float = 30) -> list[Any]:
    """Wait until the instance's signal subscriptions are published (the projection follows the workflow)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = (await api.get("/signals/subscriptions", params={"instance_id": instance})).json()
        if len(rows) >= count:
            return list(rows)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{instance} never waited for {count} signal(s): {rows}")
        await asyncio.sleep(0.1)


async def _broadcast(api: httpx.AsyncClient, name: str, **variables: Any) -> dict[str, Any]:
    response = await api.post("/signals", json={"name": name, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _reached(receipt: dict[str, Any]) -> dict[str, list[str]]:
    return {d["instance_id"]: d["element_ids"] for d in receipt["delivered"]}


async def test_a_broadcast_reaches_every_waiting_instance(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "signals.bpmn")
    first, second = [await start(api, "signal_waiter") for _ in range(2)]
    for instance in (first, second):
        [row] = await _signal_waits(api, instance)
        assert (row["element_id"], row["message_name"], row["correlation_key"]) == ("wait_go", "line_go", None)
    assert (await api.get("/messages/subscriptions", params={"instance_id": first})).json() == []  # not a message
    receipt = await _broadcast(api, "line_go", batch_id="B-1")
    assert _reached(receipt)[first] == ["wait_go"] and _reached(receipt)[second] == ["wait_go"]
    for instance in (first, second):
        done = await wait_for(api, instance, "completed")
        assert done["variables"] == {"batch_id": "B-1"}
        history = (await api.get(f"/instances/{instance}/history")).json()
        [received] = [r for r in history if r["action"] == "signal.received"]
        assert (received["element_id"], received["actor"], received["data"]["variables"]) == (
            "wait_go", "admin", {"batch_id": "B-1"},
        )  # fmt: skip
    # nobody waits any more: a signal is not kept for later, and that is no error
    again = await _broadcast(api, "line_go")
    assert first not in _reached(again) and second not in _reached(again)
    assert (await api.get("/signals/subscriptions", params={"instance_id": first})).json() == []


async def test_thrown_signals_reach_other_instances_and_start_processes(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "signals.bpmn")
    waiter = await start(api, "signal_waiter")
    await _signal_waits(api, waiter)
    batch = uuid.uuid4().hex[:8]
    thrower = await start(api, "signal_thrower", {"batch": batch})
    done = await wait_for(api, thrower, "completed")
    assert done["completed"] == ["start_t", "throw_go", "end_done"]
    # the intermediate throw's variables are its zeebe:ioMapping inputs, nothing else of the thrower
    waited = await wait_for(api, waiter, "completed")
    assert waited["variables"] == {"batch_id": batch}
    history = await completed_history(api, thrower)
    thrown = [(r["element_id"], r["data"]["name"]) for r in history if r["action"] == "signal.thrown"]
    assert thrown == [("throw_go", "line_go"), ("end_done", "line_done")]  # the end event signals too
    sent = {r["data"]["name"]: r["data"] for r in history if r["action"] == "signal.broadcast"}
    assert sent["line_go"]["delivered"][waiter] == ["wait_go"]
    # the signal start event of signal_started (other tests may deploy more processes starting on it)
    keys = {i: (await api.get(f"/instances/{i}")).json()["definition_key"] for i in sent["line_done"]["started"]}
    [started] = [i for i, key in keys.items() if key == "signal_started"]
    report = await wait_for(api, started, "completed")
    assert report["completed"] == ["on_done", "end_s"]
    assert (await api.get(f"/instances/{started}")).json()["definition_key"] == "signal_started"
    records = await completed_history(api, started)
    requested = next(r for r in records if r["action"] == "instance.start_requested")
    assert (requested["actor"], requested["data"]["signal"]) == (f"instance/{thrower}", "line_done")
    received = [r for r in records if r["action"] == "signal.received"]
    assert [(r["actor"], r["data"]) for r in received] == [
        (f"instance/{thrower}", {"name": "line_done", "start": True})
    ]
    # both broadcasts went out before the thrower ended
    assert [r["action"] for r in history][-1] == "instance.completed"


async def test_boundary_signals_interrupt_or_not(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "signals.bpmn")
    instance = await start(api, "signal_guarded")
    rows = await _signal_waits(api, instance, count=2)
    assert sorted((r["element_id"], r["message_name"]) for r in rows) == [
        ("recalled", "recall"),
        ("reminded", "reminder"),
    ]
    [task] = await wait_for_tasks(api, instance)
    reminded = await _broadcast(api, "reminder")
    assert _reached(reminded)[instance] == ["reminded"]
    state = await wait_for(api, instance, "running")
    for _ in range(100):  # the non-interrupting path runs to its end; the task stays open
        if "end_reminded" in state["completed"]:
            break
        await asyncio.sleep(0.1)
        state = (await api.get(f"/instances/{instance}")).json()
    assert "end_reminded" in state["completed"] and "inspect" in state["active"]
    assert [t["id"] for t in await wait_for_tasks(api, instance)] == [task["id"]]
    # the non-interrupting boundary event listens on while the task is open: a second reminder runs
    # the path again (its fresh subscription is listed a moment after the first one fired)
    for _ in range(300):
        again = _reached(await _broadcast(api, "reminder"))
        if instance in again:
            break
        await asyncio.sleep(0.1)
    assert again[instance] == ["reminded"], again
    recalled = await _broadcast(api, "recall", reason="supplier recall")
    assert _reached(recalled)[instance] == ["recalled"]
    done = await wait_for(api, instance, "completed")
    assert {"recalled", "end_recalled", "end_reminded"} <= set(done["completed"])
    assert "inspect" not in done["completed"] and done["variables"] == {"reason": "supplier recall"}
    assert (await api.get("/tasks", params={"instance_id": instance})).json() == []  # the task was withdrawn


async def test_a_signal_reaches_its_own_instance(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "signals.bpmn")
    instance = await start(api, "signal_inner")
    done = await wait_for(api, instance, "completed")
    assert {"wait_inner", "throw_inner", "join", "end_i"} <= set(done["completed"])


async def test_a_process_with_only_a_signal_start_is_started_by_the_signal(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "signals.bpmn")
    refused = await api.post("/instances", json={"definition_key": "signal_started"})
    assert refused.status_code == 409, refused.text
    assert "POST /signals" in refused.json()["detail"] and "'line_done'" in refused.json()["detail"]
    receipt = await _broadcast(api, "line_done", line=7)
    [started] = [s for s in receipt["started"] if s["definition_key"] == "signal_started"]
    done = await wait_for(api, started["instance_id"], "completed")
    assert done["variables"] == {"line": 7}


_UNNAMED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:signal id="nameless" />
  <bpmn:process id="signal_unnamed" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="wait" />
    <bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:signalEventDefinition signalRef="nameless" /></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="e" />
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


async def test_models_whose_signals_cannot_run_are_refused(api: httpx.AsyncClient) -> None:
    nameless = await deploy_text(api, "nameless.bpmn", _UNNAMED)
    assert nameless.status_code == 422, nameless.text
    [error] = nameless.json()["detail"]
    assert error["element_id"] == "wait" and error["line"] == 8 and "bpmn:signal that has a name" in error["message"]
    payload = (
        _UNNAMED.replace('<bpmn:signal id="nameless" />', '<bpmn:signal id="nameless" name="n" />')
        .replace(
            '<bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>',
            '<bpmn:intermediateThrowEvent id="wait"><bpmn:extensionElements><zeebe:ioMapping '
            'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"><zeebe:input source="=open(x)" target="y" />'
            "</zeebe:ioMapping></bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>",
        )
        .replace("</bpmn:intermediateCatchEvent>", "</bpmn:intermediateThrowEvent>")
    )
    unsafe = await deploy_text(api, "unsafe.bpmn", payload)
    assert unsafe.status_code == 422, unsafe.text
    [error] = unsafe.json()["detail"]
    assert error["element_id"] == "wait" and "open" in error["message"], error


async def test_a_signal_start_event_of_an_event_subprocess_inside_a_subprocess_is_refused(
    api: httpx.AsyncClient,
) -> None:
    # event subprocesses listen at the process level (tests/test_event_subprocess_events.py); nested
    # in a subprocess, nothing would listen for them
    xml = (DATA / "event_subprocess_events.bpmn").read_text()
    nested = xml.replace(
        '<bpmn:userTask id="pack" name="Pack the order"><bpmn:incoming>f1</bpmn:incoming>'
        "<bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>",
        '<bpmn:subProcess id="pack"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
        '<bpmn:startEvent id="ps"><bpmn:outgoing>pf</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="pf" sourceRef="ps" targetRef="pe" />'
        '<bpmn:endEvent id="pe"><bpmn:incoming>pf</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:subProcess id="on_abort" triggeredByEvent="true"><bpmn:startEvent id="abort_start">'
        '<bpmn:outgoing>a1</bpmn:outgoing><bpmn:signalEventDefinition signalRef="s_recall" /></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="a1" sourceRef="abort_start" targetRef="abort_end" />'
        '<bpmn:endEvent id="abort_end"><bpmn:incoming>a1</bpmn:incoming></bpmn:endEvent></bpmn:subProcess>'
        "</bpmn:subProcess>",
    )
    assert nested != xml
    refused = await deploy_text(api, "nested.bpmn", nested)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["element_id"] == "abort_start", error
    assert "signal start events of subprocesses are not supported" in error["message"], error


async def test_a_signal_races_a_timer_at_an_event_based_gateway(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "signals.bpmn")
    instance = await start(api, "signal_race", {"wait": "PT1H"})
    [row] = await _signal_waits(api, instance)
    assert (row["element_id"], row["message_name"]) == ("shift_ended", "shift_end")  # named by the catch event
    receipt = await _broadcast(api, "shift_end", shift=3)
    assert _reached(receipt)[instance] == ["shift_ended"]
    done = await wait_for(api, instance, "completed")
    assert done["completed"] == ["start_r", "race", "shift_ended", "end_shift"] and done["variables"]["shift"] == 3
    late = await start(api, "signal_race", {"wait": "PT1S"})
    timed_out = await wait_for(api, late, "completed")
    assert timed_out["completed"] == ["start_r", "race", "timed_out", "end_timeout"]
    assert (await api.get("/signals/subscriptions", params={"instance_id": late})).json() == []
