"""Tenant isolation: every endpoint by every role of tenant B against what tenant A owns.

Tenant A owns a definition and one instance holding an open task, a message subscription, an
incident and audit records. No key of tenant B, whatever its role, may read, change or even learn
of any of it: each call is refused (403 for the role, 404 for the resource) or answers without A's
data. Keys of tenant A see their own; a platform key (no tenant) sees both.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.routes.test_api_keys import bearer, create_key
from tests.api.test_auth import ALLOWED, ROLES
from tests.helpers import DATA

ACME, GLOBEX = "acme", "globex"


@dataclass(frozen=True)
class Owned:
    """What tenant A owns, by id."""

    key: str
    instance: str
    task: str
    incident: str
    api_key_id: int
    business_key: str


async def _until(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never saw {what}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def keys(api: httpx.AsyncClient) -> dict[tuple[str, str], str]:
    return {
        (tenant, role): (await create_key(api, role, tenant=tenant))["key"]
        for tenant in (ACME, GLOBEX)
        for role in ROLES
    }


@pytest.fixture(scope="module")
async def owned(api: httpx.AsyncClient, keys: dict[tuple[str, str], str]) -> Owned:
    # the process id is unique per run: keys are global, owned by the tenant that deploys first
    key = f"tenant_probe_{uuid.uuid4().hex[:8]}"
    xml = (DATA / "tenant_probe.bpmn").read_text().replace('id="tenant_probe"', f'id="{key}"')
    deployed = await api.post(
        "/deployments", files=[("files", ("probe.bpmn", xml.encode(), "application/xml"))],
        headers=bearer(keys[ACME, "modeler"]),
    )  # fmt: skip
    assert deployed.status_code == 201, deployed.text
    business_key = f"order-{uuid.uuid4().hex[:6]}"
    acme_ops = bearer(keys[ACME, "operator"])
    started = await api.post(
        "/instances",
        json={"definition_key": key, "business_key": business_key, "variables": {"url": "http://127.0.0.1:9/"}},
        headers=acme_ops,
    )
    assert started.status_code == 201, started.text
    instance = started.json()["id"]

    async def task() -> Any:
        return (await api.get("/tasks", params={"instance_id": instance}, headers=acme_ops)).json()

    async def incident() -> Any:
        return (await api.get("/incidents", params={"instance_id": instance}, headers=acme_ops)).json()

    async def subscription() -> Any:
        return (await api.get("/messages/subscriptions", params={"instance_id": instance}, headers=acme_ops)).json()

    [open_task] = await _until(task, "the task")
    [open_incident] = await _until(incident, "the incident")
    await _until(subscription, "the subscription")
    acme_keys = (await api.get("/api-keys", headers=bearer(keys[ACME, "admin"]))).json()
    return Owned(key, instance, open_task["id"], open_incident["id"], acme_keys[0]["id"], business_key)


# endpoint → how a caller reaches tenant A's data through it
async def call(api: httpx.AsyncClient, endpoint: str, headers: dict[str, str], a: Owned) -> httpx.Response:
    requests = {
        "deploy": lambda: api.post(
            "/deployments",
            files=[
                (
                    "files",
                    (
                        "m.bpmn",
                        (DATA / "tenant_probe.bpmn").read_text().replace('id="tenant_probe"', f'id="{a.key}"').encode(),
                        "application/xml",
                    ),
                )
            ],
            headers=headers,
        ),
        "list-definitions": lambda: api.get("/definitions", headers=headers),
        "get-definition": lambda: api.get(f"/definitions/{a.key}", headers=headers),
        "definition-xml": lambda: api.get(f"/definitions/{a.key}/versions/1/xml", headers=headers),
        "list-tasks": lambda: api.get("/tasks", headers=headers),
        "get-task": lambda: api.get(f"/tasks/{a.task}", headers=headers),
        "complete-task": lambda: api.post(f"/tasks/{a.task}/complete", json={"variables": {}}, headers=headers),
        "list-api-keys": lambda: api.get("/api-keys", headers=headers),
        "start-instance": lambda: api.post("/instances", json={"definition_key": a.key}, headers=headers),
        "list-instances": lambda: api.get("/instances", headers=headers),
        "get-instance": lambda: api.get(f"/instances/{a.instance}", headers=headers),
        "cancel-instance": lambda: api.post(f"/instances/{a.instance}/cancel", headers=headers),
        "set-variables": lambda: api.patch(
            f"/instances/{a.instance}/variables", json={"variables": {"y": 2}}, headers=headers
        ),
        "list-incidents": lambda: api.get("/incidents", headers=headers),
        "retry-incident": lambda: api.post(f"/incidents/{a.incident}/retry", json={}, headers=headers),
        "instance-history": lambda: api.get(f"/instances/{a.instance}/history", headers=headers),
        "audit-search": lambda: api.get("/audit", params={"limit": 1000}, headers=headers),
        "audit-verify": lambda: api.get("/audit/verify", headers=headers),
        "publish-message": lambda: api.post(
            "/messages", json={"name": "tenant-recall", "correlation_key": a.business_key}, headers=headers
        ),
        "list-subscriptions": lambda: api.get("/messages/subscriptions", headers=headers),
        "revoke-api-key": lambda: api.delete(f"/api-keys/{a.api_key_id}", headers=headers),
        "create-api-key": lambda: api.post(
            "/api-keys", json={"name": f"x-{uuid.uuid4().hex[:8]}", "roles": ["admin"], "tenant": ACME}, headers=headers
        ),
    }
    return await requests[endpoint]()


TENANT_ALLOWED = {
    **ALLOWED,
    "revoke-api-key": frozenset({"admin"}),
    "create-api-key": frozenset({"admin"}),
}
# lists answer 200 to every role allowed to call them, without tenant A's rows
LISTS = {
    "list-definitions", "list-tasks", "list-api-keys", "list-instances", "list-incidents", "audit-search",
    "list-subscriptions",
}  # fmt: skip


def _leaks(body: Any, a: Owned) -> bool:
    text = str(body)
    return any(marker in text for marker in (a.key, a.instance, a.task, a.incident, ACME))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", sorted(TENANT_ALLOWED))
async def test_tenant_b_never_reaches_tenant_a(
    api: httpx.AsyncClient, keys: dict[tuple[str, str], str], owned: Owned, endpoint: str, role: str
) -> None:
    response = await call(api, endpoint, bearer(keys[GLOBEX, role]), owned)
    if role not in TENANT_ALLOWED[endpoint]:
        assert response.status_code == 403, response.text
    elif endpoint in LISTS:
        assert response.status_code == 200, response.text
        assert not _leaks(response.json(), owned), response.text
    elif endpoint == "deploy":
        assert response.status_code == 409, response.text  # the id is A's; B learns only that it is taken
        assert ACME not in response.text
    else:
        # a 404 names only the id the caller sent, exactly as for an id that does not exist
        assert response.status_code in (403, 404), response.text
        assert ACME not in response.text
    # and tenant A's instance is as it was: running, its task open, its subscription waiting
    admin = bearer(keys[ACME, "admin"])
    state = (await api.get(f"/instances/{owned.instance}", headers=admin)).json()
    assert state["status"] == "running" and "approve" in state["active"], state
    assert "y" not in state["variables"]
    assert (await api.get(f"/tasks/{owned.task}", headers=admin)).json()["state"] == "open"


@pytest.mark.parametrize("endpoint", ["get-definition", "get-instance", "get-task", "instance-history"])
async def test_tenant_a_and_the_platform_see_tenant_a(
    api: httpx.AsyncClient, keys: dict[tuple[str, str], str], owned: Owned, endpoint: str
) -> None:
    platform: dict[str, str] = {}  # the suite's admin client: a key without a tenant
    for headers in (bearer(keys[ACME, "admin"]), platform):
        response = await call(api, endpoint, headers, owned)
        assert response.status_code == 200, response.text


async def test_lists_show_a_tenant_its_own_rows_and_the_platform_all(
    api: httpx.AsyncClient, keys: dict[tuple[str, str], str], owned: Owned
) -> None:
    acme = bearer(keys[ACME, "admin"])
    instances = (await api.get("/instances", params={"definition_key": owned.key}, headers=acme)).json()["items"]
    assert [i["id"] for i in instances] == [owned.instance]
    assert owned.key in [d["key"] for d in (await api.get("/definitions", headers=acme)).json()]
    assert owned.incident in [i["id"] for i in (await api.get("/incidents", headers=acme)).json()]
    history = (await api.get("/audit", params={"instance_id": owned.instance}, headers=acme)).json()
    assert history and all(r["tenant"] == ACME for r in history)
    assert {r["action"] for r in history} >= {"instance.start_requested", "instance.started", "incident.raised"}
    assert all(k["tenant"] == ACME for k in (await api.get("/api-keys", headers=acme)).json())
    # the platform's lists span tenants
    assert owned.key in [d["key"] for d in (await api.get("/definitions")).json()]
    assert (await api.get("/audit/verify")).json()["ok"] is True


async def test_a_tenant_admin_creates_keys_of_its_own_tenant(
    api: httpx.AsyncClient, keys: dict[tuple[str, str], str]
) -> None:
    acme = bearer(keys[ACME, "admin"])
    created = await api.post("/api-keys", json={"name": f"acme-{uuid.uuid4().hex[:8]}", "roles": ["approver"]},
                             headers=acme)  # fmt: skip
    assert created.status_code == 201 and created.json()["tenant"] == ACME, created.text
    # the new key is confined like its creator
    assert (await api.get("/audit/verify", headers=bearer(keys[ACME, "auditor"]))).status_code == 403


async def test_a_message_of_tenant_a_reaches_tenant_a(
    api: httpx.AsyncClient, keys: dict[tuple[str, str], str], owned: Owned
) -> None:
    """Last: it ends A's task. The same message that B could not deliver, A can."""
    response = await call(api, "publish-message", bearer(keys[ACME, "operator"]), owned)
    assert response.status_code == 200, response.text
    assert response.json()["delivered"] == [{"instance_id": owned.instance, "element_id": "recalled"}]
