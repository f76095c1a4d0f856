"""Timeouts, retries and backoff overridden per task in the model, on real Temporal workers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bpmn import activity_options
from bpmn.operators import PoolConfig, registry
from tests.helpers import deploy_text, start, wait_for
from workflows.contracts import ServiceTaskInput

QUEUE = "naps-" + uuid.uuid4().hex[:8]
# the pool's defaults would wait five minutes, three times, before an incident
registry.register("naps", PoolConfig(task_queue=QUEUE, max_attempts=3))
CALLS: dict[str, int] = {}


@activity.defn(name="naps.nap")
async def nap(inp: ServiceTaskInput) -> dict[str, str]:
    CALLS[inp.instance_id] = CALLS.get(inp.instance_id, 0) + 1
    await asyncio.sleep(float(inp.params["seconds"]))
    return {"slept": "yes"}


@pytest.fixture(scope="module")
async def naps_pool(client: Client) -> AsyncIterator[None]:
    async with Worker(client, task_queue=QUEUE, activities=[nap]):
        yield


ZEEBE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:serviceTask id="nap">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="naps.nap" />
        <zeebe:taskHeaders>{headers}<zeebe:header key="seconds" value="{seconds}" /></zeebe:taskHeaders>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="nap" />
    <bpmn:sequenceFlow id="f2" sourceRef="nap" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""

SPIFF = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:serviceTask id="nap">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="naps.nap" resultVariable="r">
          <spiffworkflow:parameters><spiffworkflow:parameter id="seconds" type="int" value="{seconds}" />
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
        <spiffworkflow:properties>{properties}</spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="nap" />
    <bpmn:sequenceFlow id="f2" sourceRef="nap" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""


def _headers(**values: str) -> str:
    return "".join(f'<zeebe:header key="aimatrix.{k}" value="{v}" />' for k, v in values.items())


def _properties(**values: str) -> str:
    return "".join(f'<spiffworkflow:property name="aimatrix.{k}" value="{v}" />' for k, v in values.items())


async def _incident(api: httpx.AsyncClient, instance: str) -> dict[str, object]:
    for _ in range(300):
        found = (await api.get("/incidents", params={"instance_id": instance})).json()
        if found:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no incident for {instance}")


@pytest.mark.parametrize("flavour", ["zeebe", "spiff"])
async def test_the_models_timeout_and_retries_replace_the_pools(
    api: httpx.AsyncClient, naps_pool: None, flavour: str
) -> None:
    key = f"naps_{flavour}_{uuid.uuid4().hex[:6]}"
    overrides = {"timeout": "PT0.5S", "retries": "1", "retryBackoff": "PT0.1S", "backoffCoefficient": "1.5"}
    if flavour == "zeebe":
        xml = ZEEBE.format(key=key, headers=_headers(**overrides), seconds="5")
    else:
        xml = SPIFF.format(key=key, properties=_properties(**overrides), seconds="5")
    assert (await deploy_text(api, f"{key}.bpmn", xml)).status_code == 201
    loop = asyncio.get_running_loop()
    began = loop.time()
    instance = await start(api, key)
    incident = await _incident(api, instance)
    # two attempts (1 retry) of 0.5 s each, not three of five minutes
    assert loop.time() - began < 4.5
    assert CALLS[instance] == 2
    assert "timed out" in str(incident["message"]).lower() or "timeout" in str(incident["message"]).lower()
    await api.post(f"/instances/{instance}/cancel")


async def test_a_task_without_settings_keeps_the_pools_defaults(api: httpx.AsyncClient, naps_pool: None) -> None:
    key = f"naps_plain_{uuid.uuid4().hex[:6]}"
    assert (await deploy_text(api, f"{key}.bpmn", ZEEBE.format(key=key, headers="", seconds="0.6"))).status_code == 201
    instance = await start(api, key)
    done = await wait_for(api, instance, "completed")  # 0.6 s is well inside the pool's five minutes
    assert done["variables"]["slept"] == "yes" and CALLS[instance] == 1


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"timeout": "soon"}, "aimatrix.timeout must be an ISO 8601 duration"),
        ({"timeout": "PT0S"}, "more than zero"),
        ({"heartbeatTimeout": "P400D"}, "at most 365 days"),
        ({"retries": "-1"}, "aimatrix.retries must be a whole number"),
        ({"backoffCoefficient": "0.5"}, "from 1 to 100"),
        ({"timeuot": "PT1S"}, "unknown setting 'aimatrix.timeuot'"),
    ],
)
async def test_bad_settings_are_refused_at_deploy_naming_the_task(
    api: httpx.AsyncClient, values: dict[str, str], expected: str
) -> None:
    for xml in (
        ZEEBE.format(key="naps_bad", headers=_headers(**values), seconds="1"),
        SPIFF.format(key="naps_bad", properties=_properties(**values), seconds="1"),
    ):
        answer = await deploy_text(api, "bad.bpmn", xml)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["element_id"] == "nap" and error["line"], error
        assert expected in error["message"], error


def test_durations_read_as_seconds() -> None:
    options, retries = activity_options.parse(
        {"aimatrix.timeout": "PT1M30S", "aimatrix.heartbeatTimeout": "12.5", "aimatrix.scheduleToCloseTimeout": "P1D",
         "seconds": "ignored: not a platform setting"}
    )  # fmt: skip
    assert options == {"start_to_close_seconds": 90.0, "heartbeat_seconds": 12.5, "schedule_to_close_seconds": 86400.0}
    assert retries is None
