"""Every sample process that `make run` deploys is valid and runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aimatrix.launcher import example_files
from tests.helpers import EXAMPLES, deploy, http_server, start, wait_for, wait_for_tasks


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.bpmn")), ids=lambda p: p.stem)
async def test_example_deploys(api: httpx.AsyncClient, path: Path) -> None:
    response = await deploy(api, *example_files(path))  # with its forms and decision tables, as make run does
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize(("documents_ok", "status"), [(True, "active"), (False, "rejected")])
async def test_supplier_onboarding(api: httpx.AsyncClient, documents_ok: bool, status: str) -> None:
    await deploy(api, EXAMPLES / "supplier_onboarding.bpmn")
    with http_server() as (url, requests):
        instance = await start(api, "supplier_onboarding", {"registry_url": f"{url}/registry/42"})
        [task] = await wait_for_tasks(api, instance)
        assert task["element_id"] == "review"
        response = await api.post(f"/tasks/{task['id']}/complete", json={"variables": {"documents_ok": documents_ok}})
        assert response.status_code == 200
        final = await wait_for(api, instance, "completed")
    assert final["variables"]["registry_ok"] is True
    assert final["variables"]["supplier_status"] == status
    assert [r["path"] for r in requests] == ["/registry/42"]
