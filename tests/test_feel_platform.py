"""Camunda 8 models' FEEL expressions on the real platform: mappings, conditions and assignment
evaluate as FEEL; anything outside the subset is refused at deploy naming the element and line;
definitions deployed before FEEL was read keep their Python meaning."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bpmn.definitions import validate_upload
from store import definitions
from store.models import Definition
from tests.helpers import DATA, deploy, deploy_text, http_server, start, take_and_complete, wait_for, wait_for_tasks

# Valid both as Python (how `=` expressions were read before FEEL) and as FEEL, with another meaning.
LEGACY = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"
                  id="legacy_defs" targetNamespace="t">
  <bpmn:process id="feel_legacy" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:serviceTask id="call"><bpmn:extensionElements>
      <zeebe:taskDefinition type="http.request" />
      <zeebe:ioMapping>
        <zeebe:input source="=base + &quot;/total&quot;" target="url" />
        <zeebe:input source="POST" target="method" />
        <zeebe:input source="={&quot;total&quot;: 20}" target="json" />
        <zeebe:output source="=json[&quot;echo&quot;][&quot;total&quot;]" target="total" />
      </zeebe:ioMapping></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""

LINES = [
    {"sku": "desk", "price": 400, "qty": 2},
    {"sku": "lamp", "price": 20, "qty": 3},
    {"sku": "chair", "price": 150, "qty": 4},
]


async def _run(api: httpx.AsyncClient, order: dict[str, Any]) -> tuple[str, list[Any]]:
    with http_server() as (url, requests):
        instance = await start(api, "feel_order", {"base": url, "order": order})
        await wait_for(api, instance, "running")
        for _ in range(300):
            body = (await api.get(f"/instances/{instance}")).json()
            if body["status"] != "running" or "price" in body["completed"]:
                break
            await asyncio.sleep(0.05)
    return instance, requests


async def test_feel_mappings_conditions_and_assignment(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "feel_order.bpmn")
    order = {"id": 17, "lines": LINES, "customer": {"tier": "gold"}}
    instance, requests = await _run(api, order)
    # the input mapping: iteration, a filter with a path, a 1-based index
    assert requests[0]["path"] == "/price/17"
    assert requests[0]["json"] == {"total": 1460, "big": ["desk", "chair"], "first": "desk"}
    [task] = await wait_for_tasks(api, instance)  # two big items: the FEEL condition sends it to review
    assert task["element_id"] == "review"
    assert task["candidate_groups"] == ["sales"] and task["priority"] == 14  # floor(1460 / 100)
    state = (await api.get(f"/instances/{instance}")).json()["variables"]
    assert (state["total"], state["big_items"], state["first_sku"]) == (1460, ["desk", "chair"], "DESK")
    assert state["missing"] is None  # a missing entry is null in FEEL, not an error
    assert (await take_and_complete(api, task, {})).status_code == 200
    await wait_for(api, instance, "completed")


async def test_a_feel_condition_that_is_false_takes_the_default_flow(api: httpx.AsyncClient) -> None:
    await deploy(api, DATA / "feel_order.bpmn")
    order = {"id": 18, "lines": [{"sku": "pen", "price": 2, "qty": 10}], "customer": {"tier": "gold"}}
    instance, _ = await _run(api, order)
    done = await wait_for(api, instance, "completed")
    assert done["variables"]["approved"] is True and "review" not in done["completed"]


async def test_feel_outside_the_subset_is_refused_naming_the_element(api: httpx.AsyncClient) -> None:
    xml = (DATA / "feel_order.bpmn").read_text()
    cases = {
        'source="=json.echo.total"': ('source="=now()"', "price", "not deterministic"),
        "=total &gt; 1000 or": ("=total &gt; 1000 || ", "route", "||"),
        'priority="=min([100, floor(total / 100)])"': ('priority="=date(&quot;2024-01-01&quot;)"', "review", "FEEL"),
    }
    for old, (new, element, message) in cases.items():
        assert old in xml, old
        response = await deploy_text(api, "feel_order.bpmn", xml.replace(old, new))
        assert response.status_code == 422, (new, response.text)
        [error] = response.json()["detail"]
        assert error["element_id"] == element and error["line"] > 1, (new, error)
        assert "FEEL" in error["message"] and message in error["message"], (new, error)


async def test_a_definition_deployed_before_feel_keeps_its_python_meaning(
    api: httpx.AsyncClient, session_factory: sessionmaker[Session]
) -> None:
    """`=json["echo"]["total"]` was a Python subscript when it was deployed; as FEEL it would be a
    filter giving null. A version stored before FEEL was read (the migration marks them) runs as it
    was checked; deploying the same content again makes a FEEL version."""
    legacy = LEGACY
    [definition] = validate_upload({"feel_legacy.bpmn": legacy.encode()})
    with session_factory.begin() as session:
        stored = definitions.deploy(session, key=definition.key, name=definition.name, files=definition.files,
                                    digest=definition.hash, deployed_by="test")  # fmt: skip
        session.execute(
            update(Definition).where(Definition.key == "feel_legacy", Definition.version == stored.version)
            .values(feel=False)
        )  # fmt: skip
    with http_server() as (url, _):
        instance = await start(api, "feel_legacy", {"base": url})
        done = await wait_for(api, instance, "completed")
    assert done["variables"]["total"] == 20  # the Python subscript, as deployed
    again = await deploy_text(api, "feel_legacy.bpmn", legacy)
    assert again.status_code == 201 and again.json()["definitions"][0]["version"] == stored.version + 1
    with http_server() as (url, _):
        instance = await start(api, "feel_legacy", {"base": url})
        done = await wait_for(api, instance, "completed")
    assert done["variables"]["total"] is None  # the same text, read as FEEL
