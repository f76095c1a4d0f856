"""Models from Camunda Modeler on real Temporal: Camunda 8's zeebe:calledElement and
zeebe:loopCharacteristics are honoured; Camunda 7's JUEL conditions and timers run for the subset
that means the same as FEEL; JUEL outside it and cron timers are refused at deploy, naming the element
and the expression."""

from __future__ import annotations

import httpx

from bpmn import ordered_outputs, runtime
from bpmn.definitions import content_hash, load_process
from tests.helpers import DATA, deploy, deploy_text, start, wait_for


async def test_a_zeebe_multi_instance_call_activity_runs(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "camunda8_call_loop.bpmn")
    instance = await start(api, "double_all", {"items": [1, 2, 3]})
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"items": [1, 2, 3], "results": [2, 4, 6]}
    assert {"double", "times_two"} <= set(done["completed"])


async def test_juel_conditions_and_timers_run(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "camunda7_juel.bpmn")
    cases = [
        ({"amount": 150}, "external", "big"),
        ({"amount": 150}, "internal", "small"),  # !(customer == 'internal') is false
        ({"amount": 100}, "external", "small"),  # gt is strict
    ]
    for order, customer, end in cases:
        instance = await start(api, "juel_routing", {"order": order, "customer": customer, "wait": "PT0.5S"})
        done = await wait_for(api, instance, "completed")
        assert done["completed"][-1] == end, (order, customer, done["completed"])


_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="refused_{label}" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {element}
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />
    <bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""
_TIMER = (
    '<bpmn:intermediateCatchEvent id="x"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
    "<bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}></bpmn:timerEventDefinition>"
    "</bpmn:intermediateCatchEvent>"
)


async def test_what_cannot_be_read_the_same_is_refused_naming_the_expression(api: httpx.AsyncClient) -> None:
    cases = {
        "cron": (_TIMER.format(kind="timeCycle", value="0 0 9 * * ?"), "cron timer '0 0 9 * * ?' is not supported"),
        "method": (_TIMER.format(kind="timeDuration", value="${durations.get(0)}"), "JUEL '${durations.get(0)}'"),
        "ternary": (_TIMER.format(kind="timeDuration", value="${fast ? 'PT1M' : 'PT1H'}"), 'JUEL "${fast ?'),
        "embedded": (_TIMER.format(kind="timeDuration", value="PT${minutes}M"), "whole-value expression"),
        "called": (
            '<bpmn:callActivity id="x"><bpmn:extensionElements><zeebe:calledElement processId="=concat(a, b)" />'
            "</bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
            "</bpmn:callActivity>",
            "zeebe:calledElement processId '=concat(a, b)' is not supported",
        ),
        "missing": (
            '<bpmn:callActivity id="x"><bpmn:extensionElements><zeebe:calledElement processId="nowhere" />'
            "</bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
            "</bpmn:callActivity>",
            "calls process 'nowhere', which is neither in this upload nor deployed",
        ),
        "loop": (
            '<bpmn:task id="x"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            "<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements><zeebe:loopCharacteristics "
            'inputCollection="=orders[amount &gt; 10]" inputElement="order" /></bpmn:extensionElements>'
            "</bpmn:multiInstanceLoopCharacteristics></bpmn:task>",
            "inputCollection '=orders[amount > 10]' is not supported",
        ),
    }
    for label, (element, expected) in cases.items():
        answer = await deploy_text(api, f"{label}.bpmn", _MODEL.format(label=label, element=element))
        assert answer.status_code == 422, (label, answer.text)
        [error] = answer.json()["detail"]
        assert error["element_id"] == "x" and error["line"], (label, error)
        assert expected in error["message"], (label, error)


def _race(ordered: bool) -> list[int]:
    """Run double_all with the three script tasks finishing last-first, as activities may."""
    files = {"camunda8_call_loop.bpmn": (DATA / "camunda8_call_loop.bpmn").read_text()}
    workflow = runtime.new_workflow(
        load_process(files, "double_all", content_hash(files)), {"items": [1, 2, 3]}, inline_scripts=False
    )
    setattr(workflow, ordered_outputs.ORDERED, ordered)
    runtime.run_engine(workflow)
    scripts = runtime.started_external_tasks(workflow)
    assert [t.data["item"] for t in scripts] == [1, 2, 3]
    for task in reversed(scripts):
        runtime.complete_script_task(task, {"data": {**task.data, "doubled": task.data["item"] * 2}})
        runtime.run_engine(workflow)
    assert workflow.completed
    results: list[int] = runtime.variables(workflow)["results"]
    return results


def test_parallel_results_keep_the_order_of_their_inputs() -> None:
    assert _race(ordered=True) == [2, 4, 6]
    assert _race(ordered=False) == [6, 4, 2]  # SpiffWorkflow's own order: completion order
