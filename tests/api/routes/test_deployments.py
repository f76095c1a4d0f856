"""POST /deployments: versions, idempotence, and precise errors for bad models."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import DATA, EXAMPLES, deploy, deploy_text

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {body}
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task" />
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def script_model(key: str, script: str) -> str:
    body = f"""<bpmn:scriptTask id="task"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script></bpmn:scriptTask>"""
    return PROCESS.format(key=key, body=body)


def service_model(key: str, operator: str) -> str:
    body = f"""<bpmn:serviceTask id="task"><bpmn:extensionElements>
      <spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="r"><spiffworkflow:parameters />
      </spiffworkflow:serviceTaskOperator></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:serviceTask>"""
    return PROCESS.format(key=key, body=body)


async def test_same_content_is_not_a_new_version_and_changed_content_is(api: httpx.AsyncClient) -> None:
    first = await deploy_text(api, "v.bpmn", script_model("versioned", "x = 1"))
    assert first.status_code == 201, first.text
    [d1] = first.json()["definitions"]
    assert (d1["key"], d1["version"]) == ("versioned", 1)
    again = await deploy_text(api, "v.bpmn", script_model("versioned", "x = 1"))
    assert again.status_code == 200
    assert again.json()["definitions"] == [d1]
    changed = await deploy_text(api, "v.bpmn", script_model("versioned", "x = 2"))
    assert changed.status_code == 201
    [d2] = changed.json()["definitions"]
    assert d2["version"] == 2 and d2["hash"] != d1["hash"]

    listed = (await api.get("/definitions")).json()
    assert {"key": "versioned", "version": 2, "hash": d2["hash"], "name": "versioned"} in listed
    versions = (await api.get("/definitions/versioned")).json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    xml = await api.get("/definitions/versioned/versions/1/xml")
    assert xml.status_code == 200 and "x = 1" in xml.text
    assert (await api.get("/definitions/versioned/versions/9/xml")).status_code == 404
    assert (await api.get("/definitions/nope")).status_code == 404


async def test_running_instances_keep_their_version(api: httpx.AsyncClient) -> None:
    await deploy_text(api, "pin.bpmn", script_model("pinned", "result = 'v1'"))
    await deploy_text(api, "pin.bpmn", script_model("pinned", "result = 'v2'"))
    old = await api.post("/instances", json={"definition_key": "pinned", "version": 1})
    new = await api.post("/instances", json={"definition_key": "pinned"})
    assert old.json()["version"] == 1 and new.json()["version"] == 2
    from tests.helpers import wait_for

    assert (await wait_for(api, old.json()["id"], "completed"))["variables"]["result"] == "v1"
    assert (await wait_for(api, new.json()["id"], "completed"))["variables"]["result"] == "v2"


@pytest.mark.parametrize(
    ("xml", "element", "fragment"),
    [
        (script_model("bad_syntax", "x = = 1"), "task", "not valid Python"),
        (script_model("bad_import", "import os"), "task", "Import is not allowed"),
        (script_model("bad_dunder", "x = ().__class__"), "task", "'__class__' is not allowed"),
        (service_model("bad_operator", "nosuch.op"), "task", "no worker pool 'nosuch'"),
        (service_model("bad_operator_form", "justaname"), "task", "<pool>.<operation>"),
        (
            PROCESS.format(
                key="bad_timer",
                body="""<bpmn:intermediateCatchEvent id="task"><bpmn:incoming>f1</bpmn:incoming>
                <bpmn:outgoing>f2</bpmn:outgoing><bpmn:timerEventDefinition>
                <bpmn:timeDuration>P3X</bpmn:timeDuration></bpmn:timerEventDefinition>
                </bpmn:intermediateCatchEvent>""",
            ),
            "task",
            "timer",
        ),
        (
            PROCESS.format(
                key="link",
                body="""<bpmn:intermediateThrowEvent id="task"><bpmn:incoming>f1</bpmn:incoming>
                <bpmn:outgoing>f2</bpmn:outgoing><bpmn:linkEventDefinition name="l" />
                </bpmn:intermediateThrowEvent>""",
            ),
            "task",
            "link events are not supported",
        ),
    ],
    ids=["syntax", "import", "dunder", "unknown-pool", "operator-form", "timer", "link-event"],
)
async def test_invalid_models_are_refused_naming_the_element(
    api: httpx.AsyncClient, xml: str, element: str, fragment: str
) -> None:
    response = await deploy_text(api, "broken.bpmn", xml)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["file"] == "broken.bpmn"
    assert error["element_id"] == element
    assert isinstance(error["line"], int) and error["line"] > 1
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"<bpmn:definitions", "not well-formed"),
        (b"not xml at all", "not well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "DOCTYPE"),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>', "not a BPMN"),
    ],
    ids=["truncated", "garbage", "xxe", "not-bpmn"],
)
async def test_bad_files_are_refused_with_a_clear_message(
    api: httpx.AsyncClient, content: bytes, fragment: str
) -> None:
    response = await api.post("/deployments", files=[("files", ("bad.bpmn", content, "application/xml"))])
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert fragment in error["message"]
    assert "root:" not in response.text  # no file content echoed


async def test_wrong_extension_and_schema_errors(api: httpx.AsyncClient) -> None:
    response = await api.post("/deployments", files=[("files", ("model.txt", b"hello", "text/plain"))])
    assert response.status_code == 422
    assert ".bpmn" in response.json()["detail"][0]["message"]
    schema = script_model("schema", "x = 1").replace("<bpmn:script>", "<bpmn:bogus/><bpmn:script>")
    response = await deploy_text(api, "schema.bpmn", schema)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["line"] is not None and "bogus" in error["message"]


async def test_deploy_needs_a_key(api: httpx.AsyncClient) -> None:
    path = EXAMPLES / "order_approval.bpmn"
    response = await api.post(
        "/deployments",
        files=[("files", (path.name, path.read_bytes()))],
        headers={"Authorization": "Bearer wrong"},
    )
    assert response.status_code == 401
    response = await api.post(
        "/deployments", files=[("files", (path.name, path.read_bytes()))], headers={"Authorization": ""}
    )
    assert response.status_code == 401


async def test_several_files_in_one_upload(api: httpx.AsyncClient) -> None:
    response = await deploy(api, EXAMPLES / "order_approval.bpmn", DATA / "gateways.bpmn")
    assert response.status_code in (200, 201), response.text
    assert {d["key"] for d in response.json()["definitions"]} == {"order_approval", "fan_out"}


async def test_one_bad_file_refuses_the_whole_upload(api: httpx.AsyncClient) -> None:
    files = [
        ("files", ("good.bpmn", script_model("all_or_nothing", "x = 1").encode(), "application/xml")),
        ("files", ("bad.bpmn", script_model("all_or_nothing_bad", "x = (").encode(), "application/xml")),
    ]
    response = await api.post("/deployments", files=files)
    assert response.status_code == 422
    assert [e["file"] for e in response.json()["detail"]] == ["bad.bpmn"]
    assert (await api.get("/definitions/all_or_nothing")).status_code == 404


async def test_a_versions_files_can_be_listed_and_read(api: httpx.AsyncClient) -> None:
    deployed = await deploy(api, DATA / "inbox_review.bpmn", DATA / "review_form.json")
    version = deployed.json()["definitions"][0]["version"]
    base = f"/definitions/inbox_review/versions/{version}/files"
    assert (await api.get(base)).json() == ["inbox_review.bpmn", "review_form.json"]
    form = await api.get(f"{base}/review_form.json")
    assert form.status_code == 200 and form.headers["content-type"].startswith("application/json")
    assert form.json()["required"] == ["decision", "amount_approved"]
    assert (await api.get(f"{base}/inbox_review.bpmn")).text.startswith("<?xml")
    missing = await api.get(f"{base}/other.json")
    assert missing.status_code == 404 and "other.json" in missing.json()["detail"]
    assert (await api.get("/definitions/inbox_review/versions/999999/files")).status_code == 404


async def test_a_conditional_start_event_is_refused(api: httpx.AsyncClient) -> None:
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="conditional_start" isExecutable="true">
    <bpmn:startEvent id="when_ready"><bpmn:outgoing>f</bpmn:outgoing>
      <bpmn:conditionalEventDefinition><bpmn:condition>ready</bpmn:condition></bpmn:conditionalEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="f" sourceRef="when_ready" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""
    response = await deploy_text(api, "conditional_start.bpmn", xml)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["element_id"] == "when_ready" and error["line"] == 5
    assert "conditional start events are not supported" in error["message"]
