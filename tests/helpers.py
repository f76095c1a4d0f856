"""Factories and waiting helpers shared by tests."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parent.parent / "examples"


def api_client(app: Any, api_key: str) -> httpx.AsyncClient:
    """An HTTP client of `app`'s API (in process), with `api_key`."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/api/v1",
        headers={"Authorization": f"Bearer {api_key}"},
    )


async def deploy(api: httpx.AsyncClient, *paths: Path, expect: int | None = None) -> httpx.Response:
    files = [("files", (p.name, p.read_bytes(), "application/xml")) for p in paths]
    response = await api.post("/deployments", files=files)
    if expect is not None:
        assert response.status_code == expect, response.text
    return response


async def deploy_text(api: httpx.AsyncClient, name: str, xml: str) -> httpx.Response:
    return await api.post("/deployments", files=[("files", (name, xml.encode(), "application/xml"))])


async def start(api: httpx.AsyncClient, key: str, variables: dict[str, Any] | None = None, **extra: Any) -> str:
    response = await api.post("/instances", json={"definition_key": key, "variables": variables or {}, **extra})
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["id"]
    return instance_id


async def wait_for(api: httpx.AsyncClient, instance_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body: dict[str, Any] = (await api.get(f"/instances/{instance_id}")).json()
        if body.get("status") == status:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"instance {instance_id} never reached {status}: {body}")
        await asyncio.sleep(0.1)


async def wait_for_tasks(api: httpx.AsyncClient, instance_id: str, count: int = 1, timeout: float = 30) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        tasks: list[Any] = (await api.get("/tasks", params={"instance_id": instance_id})).json()
        if len(tasks) >= count:
            return tasks
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"instance {instance_id} has {tasks}, expected {count} open tasks")
        await asyncio.sleep(0.1)


async def take_and_complete(api: httpx.AsyncClient, task: dict[str, Any], variables: dict[str, Any]) -> httpx.Response:
    """Complete `task` as an operator steps in: a task for named people or groups is first assigned
    to the caller (audited), as the inbox's rules require; then completed."""
    if task.get("candidate_groups") or task.get("candidate_users") or task.get("assignee"):
        me = (await api.get("/me")).json()["subject"]
        if task.get("assignee") != me:
            assigned = await api.post(f"/tasks/{task['id']}/assign", json={"assignee": me})
            assert assigned.status_code == 200, assigned.text
    return await api.post(f"/tasks/{task['id']}/complete", json={"variables": variables})


class _Handler(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append(  # type: ignore[attr-defined]
            {"method": self.command, "path": self.path, "json": body, "headers": dict(self.headers)}
        )
        if self.path.startswith("/fail"):
            self.send_response(500)
            self.end_headers()
            return
        payload = json.dumps({"ok": True, "path": self.path, "echo": body}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on loopback answering with `handler`, in a thread, for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def http_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on loopback that records what it receives."""
    with serving(_Handler) as server:
        server.requests = []  # type: ignore[attr-defined]
        yield f"http://127.0.0.1:{server.server_port}", server.requests  # type: ignore[attr-defined]


async def completed_history(api: httpx.AsyncClient, instance: str) -> list[dict[str, Any]]:
    """The audit history of an instance that completed, once its last entries are stored."""
    for _ in range(100):  # a completed instance's last entries arrive with the status projector
        records: list[dict[str, Any]] = (await api.get(f"/instances/{instance}/history")).json()
        if any(r["action"] == "instance.completed" for r in records):
            return records
        await asyncio.sleep(0.1)
    raise AssertionError(f"no instance.completed in the history of {instance}: {records}")


def completion(records: list[dict[str, Any]], element_id: str) -> dict[str, Any]:
    """The element.completed entry of `element_id`."""
    found: dict[str, Any] = next(
        r for r in records if r["action"] == "element.completed" and r["element_id"] == element_id
    )
    return found
