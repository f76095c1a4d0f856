"""Instances and tasks: the REST contract's error cases and concurrent completion."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from aimatrix.settings import Settings
from api.launch import instance_id_for
from bpmn.definitions import start_input
from store import definitions
from tests.conftest import API_KEY
from tests.helpers import DATA, EXAMPLES, deploy, deploy_text, http_server, start, wait_for, wait_for_tasks
from workflows.contracts import ENGINE_TASK_QUEUE, PROCESS_WORKFLOW


async def test_health_is_public(api: httpx.AsyncClient) -> None:
    response = await api.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


async def test_unknown_things_are_404(api: httpx.AsyncClient) -> None:
    missing = await api.post("/instances", json={"definition_key": "no_such_process"})
    assert missing.status_code == 404
    assert "no_such_process" in missing.json()["detail"]
    assert (await api.get("/instances/nope")).status_code == 404
    assert (await api.post("/tasks/nope/complete", json={"variables": {}})).status_code == 404


async def test_bad_variables_are_422(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    for variables in ({"__builtins__": {}}, {"not an identifier": 1}, {"class": 1}):
        response = await api.post("/instances", json={"definition_key": "order_approval", "variables": variables})
        assert response.status_code == 422, variables
    response = await api.post("/instances", json={"definition_key": "order_approval", "variables": [1]})
    assert response.status_code == 422


async def test_a_failing_script_is_an_incident_naming_the_element_and_line(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    instance = await start(api, "order_approval", {"price": "ten", "quantity": None})
    for _ in range(200):
        incidents = (await api.get("/incidents", params={"instance_id": instance})).json()
        if incidents:
            break
        await asyncio.sleep(0.1)
    [incident] = incidents
    assert incident["element_id"] == "compute_total"
    assert "line 1 of the script" in incident["message"] and "TypeError" in incident["message"]
    assert (await wait_for(api, instance, "running"))["active"] == ["compute_total"]
    assert (await api.post(f"/instances/{instance}/cancel")).status_code == 200


BROKEN_CONDITION = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="broken_condition" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="check" default="f3"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="e1"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="e2"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="check" />
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="e1">
      <bpmn:conditionExpression>amount &gt; limit</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="e2" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_a_failing_condition_fails_the_instance_naming_the_element(api: httpx.AsyncClient) -> None:
    assert (await deploy_text(api, "broken.bpmn", BROKEN_CONDITION)).status_code in (200, 201)
    instance = await start(api, "broken_condition", {"amount": 5})  # no `limit`
    final = await wait_for(api, instance, "failed")
    assert "check" in final["error"] and "limit" in final["error"]
    # a failed instance has no result to carry its last audit entries: they are written on the way out
    history = (await api.get(f"/instances/{instance}/history")).json()
    assert [r["action"] for r in history][-1] == "instance.failed"
    assert ("element.entered", "check") in [(r["action"], r["element_id"]) for r in history]


async def test_two_approvers_complete_at_once_exactly_one_wins(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    with http_server() as (url, requests):
        instance = await start(api, "order_approval", {"price": 500, "quantity": 1, "notify_url": url})
        [task] = await wait_for_tasks(api, instance)
        responses = await asyncio.gather(
            *(
                api.post(f"/tasks/{task['id']}/complete", json={"variables": {"approved": who == 0, "who": who}})
                for who in range(4)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409, 409, 409], [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200)
        final = await wait_for(api, instance, "completed")
    assert final["variables"]["who"] in range(4)
    assert winner.json()["instance_status"] in ("running", "completed")
    assert len(requests) == 1


async def test_task_variables_are_validated(api: httpx.AsyncClient) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    instance = await start(api, "order_approval", {"price": 500, "quantity": 1, "notify_url": "http://127.0.0.1:9"})
    [task] = await wait_for_tasks(api, instance)
    response = await api.post(f"/tasks/{task['id']}/complete", json={"variables": {"_secret": 1}})
    assert response.status_code == 422
    assert (await api.get("/tasks", params={"instance_id": instance})).json()[0]["id"] == task["id"]


async def test_temporal_down_is_503_not_500(settings: Settings) -> None:
    from temporalio.testing import WorkflowEnvironment

    from aimatrix.binaries import temporal_cli
    from api.main import create_app

    # a second, short-lived Temporal server: connected while up, then stopped under the API
    doomed = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli())
    app = create_app(settings, temporal=doomed.client)
    async with app.router.lifespan_context(app):
        await doomed.shutdown()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t/api/v1", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as http:
            await deploy(http, EXAMPLES / "order_approval.bpmn")
            response = await http.post("/instances", json={"definition_key": "order_approval"})
            health = await http.get("/health")
    assert response.status_code == 503, response.text
    assert "workflow engine is unavailable" in response.json()["detail"]
    assert health.status_code == 503 and health.json()["temporal"].startswith("error")


async def test_openapi_document_and_docs(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert {"/api/v1/instances", "/api/v1/incidents/{incident_id}/retry", "/api/v1/audit/verify"} <= set(spec["paths"])
    assert (await api.get("/docs")).status_code == 200
    root = await api.get("http://testserver/docs")
    assert root.status_code == 307 and root.headers["location"] == "/api/v1/docs"


async def test_a_start_retried_with_its_idempotency_key_starts_nothing_new(
    api: httpx.AsyncClient, client: Client, session_factory: sessionmaker[Session]
) -> None:
    await deploy(api, DATA / "two_step_approval.bpmn")
    body = {"definition_key": "two_step_approval", "variables": {"amount": 1}}
    first = await api.post("/instances", json=body, headers={"Idempotency-Key": "order-4711"})
    again = await api.post("/instances", json=body, headers={"Idempotency-Key": "order-4711"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = await api.post("/instances", json=body, headers={"Idempotency-Key": "order-4712"})
    assert other.json()["id"] != first.json()["id"]
    listed = (await api.get("/instances", params={"definition_key": "two_step_approval"})).json()["items"]
    assert sum(1 for i in listed if i["id"] == first.json()["id"]) == 1
    history = (await api.get(f"/instances/{first.json()['id']}/history")).json()
    assert [r["action"] for r in history].count("instance.start_requested") == 1
    # the key names one start: another definition under it is a conflict, not a second instance
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    clash = await api.post(
        "/instances", json={"definition_key": "order_approval"}, headers={"Idempotency-Key": "order-4711"}
    )
    assert clash.status_code == 409 and "two_step_approval" in clash.json()["detail"]

    # the API died after Temporal started the instance and before it indexed it: the retry indexes it
    actor = listed[0]["started_by"]
    instance_id = instance_id_for("order-4713", actor=actor, tenant=None)
    with session_factory() as session:
        found = definitions.get(session, key="two_step_approval", version=None, tenant=None)
        assert found is not None
        files = definitions.files(session, key=found.key, version=found.version)
    inp = start_input(instance_id=instance_id, key=found.key, version=found.version, digest=found.hash, files=files,
                      variables={"amount": 1}, business_key=None, started_by=actor)  # fmt: skip
    await client.start_workflow(PROCESS_WORKFLOW, inp, id=instance_id, task_queue=ENGINE_TASK_QUEUE)
    assert (await api.get(f"/instances/{instance_id}")).status_code == 404  # not indexed
    retried = await api.post("/instances", json=body, headers={"Idempotency-Key": "order-4713"})
    assert retried.status_code == 201 and retried.json()["id"] == instance_id, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert (await api.get(f"/instances/{instance_id}")).json()["status"] == "running"
