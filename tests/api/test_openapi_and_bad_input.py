"""The OpenAPI document describes every route completely, and no input to any route gets a 500.

The second half walks the live OpenAPI document, so a route added later is covered without
editing this file: hostile path and query values, malformed and mistyped bodies, for every
operation, answered with a 4xx carrying a `detail` (or a 2xx where the input is harmless).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

PREFIX = "/api/v1"
HOSTILE = ["x" * 5000, "..%2F..%2Fetc%2Fpasswd", "%00", "' OR 1=1 --", "\u202e\U0001f600", "-1", "0", "9" * 30, " "]


@pytest.fixture(scope="module")
async def spec(api: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await api.get("/openapi.json")).json()
    return document


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "patch", "put", "delete")
    ]


async def test_every_operation_documents_its_auth_errors_and_schemas(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {"type": "http", "scheme": "bearer"}
    operations = _operations(spec)
    assert len(operations) >= 23
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("summary") and op.get("tags"), where
        responses = op["responses"]
        if path == f"{PREFIX}/health":
            assert "security" not in op and "503" in responses, where
            continue
        assert op.get("security") == [{"HTTPBearer": []}], where
        for code in ("401", "403", "503"):
            assert code in responses, f"{where} does not document {code}"
        for code, answer in responses.items():
            assert answer.get("description"), f"{where} {code}"
            if code in ("204",):
                continue
            content = answer.get("content", {})
            assert content, f"{where} {code} has no body schema"
            for media in content.values():
                if code.startswith(("4", "5")):
                    assert media.get("schema"), f"{where} {code}"
        # a route that takes an id says what happens when it does not exist
        if "{" in path:
            assert "404" in responses, f"{where} does not document 404"
        # a route that changes a running thing says what happens when it cannot
        if path.endswith(("/cancel", "/variables", "/retry", "/complete")):
            assert "409" in responses, f"{where} does not document 409"


async def test_error_schemas_are_components(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["detail"]
    assert set(schemas["ModelErrorPublic"]["properties"]) == {"file", "element_id", "line", "message"}
    deploy = spec["paths"][f"{PREFIX}/deployments"]["post"]["responses"]
    assert deploy["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ModelErrorsBody")


def _fill(path: str, value: str) -> str:
    out, depth, name = "", 0, ""
    for char in path:
        if char == "{":
            depth, name = 1, ""
        elif char == "}":
            depth = 0
            out += httpx.URL("http://h/").copy_with(path="/" + value).raw_path.decode()[1:] if value else "x"
        elif depth:
            name += char
        else:
            out += char
    return out


def _bodies(op: dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """(label, raw body, content type) variants that are wrong in every way a client gets a body wrong."""
    request = op.get("requestBody")
    if not request:
        return []
    content = request["content"]
    if "multipart/form-data" in content:
        return [
            ("json instead of multipart", b'{"files": []}', "application/json"),
            ("no files", b"--b\r\n\r\n--b--\r\n", "multipart/form-data; boundary=b"),
            ("garbage", b"\x00\xff" * 100, "multipart/form-data; boundary=zz"),
        ]
    variants = [
        ("invalid json", b'{"name": ', "application/json"),
        ("array", b"[]", "application/json"),
        ("null", b"null", "application/json"),
        ("string", b'"x"', "application/json"),
        ("deeply nested", b'{"variables": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}", "application/json"),
        ("not json", b"name=x", "application/x-www-form-urlencoded"),
        ("huge number", b'{"variables": {"a": 1e999999}}', "application/json"),
        ("bad utf-8", b'{"name": "\xff\xfe"}', "application/json"),
    ]
    ref = content["application/json"]["schema"].get("$ref", "")
    schema = spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    for field in schema.get("properties", {}):
        for label, value in (("object", {"a": {}}), ("list", [1, [2]]), ("long", "y" * 100_000), ("int", 2**70)):
            variants.append((f"{field}={label}", json.dumps({field: value}).encode(), "application/json"))
    variants.append(("dunder variable", b'{"variables": {"__class__": 1}, "name": "m"}', "application/json"))
    return variants


async def test_no_input_to_any_operation_is_a_server_error(api: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    checked = 0
    for method, path, op in _operations(spec):
        relative = path.removeprefix(PREFIX)
        calls: list[tuple[str, str, dict[str, Any]]] = []
        if "{" in relative:
            calls += [(f"path {v[:20]!r}", _fill(relative, v), {}) for v in HOSTILE]
        else:
            calls.append(("plain", relative, {}))
        for parameter in op.get("parameters", []):
            if parameter["in"] == "query":
                for value in HOSTILE:
                    calls.append((f"query {parameter['name']}={value[:20]!r}", _fill(relative, "x"), {
                        "params": {parameter["name"]: value}}))  # fmt: skip
        for label, body, content_type in _bodies(op, spec):
            calls.append((f"body {label}", _fill(relative, "x"), {"content": body,
                          "headers": {"content-type": content_type}}))  # fmt: skip
        for label, url, extra in calls:
            response = await api.request(method.upper(), url, **extra)
            checked += 1
            where = f"{method.upper()} {url[:80]} [{label}]"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
            if response.status_code >= 400:
                assert "detail" in response.json(), where
                assert "Traceback" not in response.text, where
    assert checked > 300
