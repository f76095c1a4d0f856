"""Multiple start events on real Temporal: any one of the start event's messages or signals starts an
instance (BPMN's multiple start); parallel multiple start events, and timers inside multiple start
events, are refused at deploy, naming the element."""

from __future__ import annotations

import httpx

from tests.helpers import deploy_text, wait_for, wait_for_tasks

_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:message id="m_fax" name="order-faxed" />
  <bpmn:message id="m_mail" name="order-mailed" />
  <bpmn:signal id="s_reopen" name="orders-reopened" />
  <bpmn:process id="any_channel" isExecutable="true">
    <bpmn:startEvent id="received"{parallel}><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="d_fax" messageRef="m_fax" />
      <bpmn:messageEventDefinition id="d_mail" messageRef="m_mail" />
      {third}
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="received" targetRef="handle" />
    <bpmn:userTask id="handle"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="handle" targetRef="done" />
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""
_SIGNAL = '<bpmn:signalEventDefinition id="d_reopen" signalRef="s_reopen" />'


def _model(*, parallel: bool = False, third: str = _SIGNAL) -> str:
    return _MODEL.format(parallel=' parallelMultiple="true"' if parallel else "", third=third)


async def test_any_of_a_multiple_start_events_messages_or_signals_starts_an_instance(api: httpx.AsyncClient) -> None:
    assert (await deploy_text(api, "any_channel.bpmn", _model())).status_code == 201
    refused = await api.post("/instances", json={"definition_key": "any_channel"})
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "'order-faxed', 'order-mailed'" in detail and "'orders-reopened'" in detail, detail

    by_message = await api.post("/messages", json={"name": "order-mailed", "correlation_key": "M-1",
                                                   "variables": {"pages": 3}})  # fmt: skip
    assert by_message.status_code == 200, by_message.text
    [started] = [s for s in by_message.json()["started"] if s["definition_key"] == "any_channel"]
    by_signal = await api.post("/signals", json={"name": "orders-reopened", "variables": {"batch": 9}})
    assert by_signal.status_code == 200, by_signal.text
    [signalled] = [s for s in by_signal.json()["started"] if s["definition_key"] == "any_channel"]

    for instance, variables in ((started["instance_id"], {"pages": 3}), (signalled["instance_id"], {"batch": 9})):
        [task] = await wait_for_tasks(api, instance)
        assert task["element_id"] == "handle"
        assert (await api.post(f"/tasks/{task['id']}/complete", json={"variables": {}})).status_code == 200
        done = await wait_for(api, instance, "completed")
        assert done["variables"] == variables and done["completed"] == ["received", "handle", "done"], done
    history = (await api.get(f"/instances/{started['instance_id']}/history")).json()
    assert [e["data"]["name"] for e in history if e["action"] == "message.received"] == ["order-mailed"]


async def test_multiple_start_events_that_cannot_start_an_instance_are_refused(api: httpx.AsyncClient) -> None:
    parallel = await deploy_text(api, "parallel.bpmn", _model(parallel=True))
    assert parallel.status_code == 422, parallel.text
    [error] = parallel.json()["detail"]
    assert error["element_id"] == "received" and error["line"] == 7, error
    assert "parallel multiple start events are not supported" in error["message"], error

    timer = "<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
    timed = await deploy_text(api, "timed.bpmn", _model(third=timer))
    assert timed.status_code == 422, timed.text
    [error] = timed.json()["detail"]
    assert error["element_id"] == "received" and "timer in a multiple start event" in error["message"], error
