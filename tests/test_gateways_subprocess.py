"""Parallel and inclusive gateways, an embedded subprocess and a Camunda 8 (zeebe) service task."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import DATA, deploy, http_server, start, wait_for, wait_for_tasks


@pytest.mark.parametrize(
    ("n", "taken", "skipped"),
    [
        (12, {"c_big_task", "c_even_task"}, {"c_default_task"}),
        (11, {"c_big_task"}, {"c_even_task", "c_default_task"}),
        (3, {"c_default_task"}, {"c_big_task", "c_even_task"}),
    ],
)
async def test_parallel_branches_join_after_service_user_and_subprocess(
    api: httpx.AsyncClient, n: int, taken: set[str], skipped: set[str]
) -> None:
    await deploy(api, DATA / "gateways.bpmn")
    with http_server() as (url, requests):
        instance = await start(api, "fan_out", {"n": n, "base": url})
        [task] = await wait_for_tasks(api, instance)
        assert task["element_id"] == "review_b"
        # the service branch and the subprocess ran while the user task waits
        running = await wait_for(api, instance, "running")
        assert "review_b" in running["active"]
        response = await api.post(f"/tasks/{task['id']}/complete", json={"variables": {"reviewed": "yes"}})
        assert response.status_code == 200, response.text
        final = await wait_for(api, instance, "completed")
    assert final["variables"]["a_n"] == n
    assert final["variables"]["reviewed"] == "yes"
    assert taken <= set(final["completed"])
    assert not skipped & set(final["completed"])
    assert {"call_a", "review_b", "sub_c", "join", "end"} <= set(final["completed"])
    assert [(r["method"], r["path"], r["json"]) for r in requests] == [("POST", "/a", {"n": n})]


async def test_an_output_mapping_that_does_not_fit_fails_the_instance_clearly(api: httpx.AsyncClient) -> None:
    xml = (DATA / "gateways.bpmn").read_text()
    xml = xml.replace('id="fan_out" name="Fan out"', 'id="fan_out_bad_mapping" name="Fan out, bad mapping"')
    # FEEL gives null for a missing entry (`json.missing`), but a name the result does not have is an error
    assert "=json.echo.n" in xml
    xml = xml.replace("=json.echo.n", "=missing.n")
    response = await api.post("/deployments", files=[("files", ("bad_mapping.bpmn", xml.encode(), "application/xml"))])
    assert response.status_code == 201, response.text
    with http_server() as (url, _):
        instance = await start(api, "fan_out_bad_mapping", {"n": 1, "base": url})
        final = await wait_for(api, instance, "failed")
    assert "call_a" in final["error"]
    assert "NameError" in final["error"] and "missing" in final["error"]
