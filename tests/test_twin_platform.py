"""The digital twin on the platform: its pool, its API, `twin.simulate` as a service task, and a
prediction checked against instances that really ran.

A real twin worker (the pool's own workflow and activity) polls the `twin` queue of the session's
Temporal dev server and reads the session's database; simulations are asked for through the API.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from tests.api.routes.test_api_keys import bearer, create_key
from tests.helpers import DATA, EXAMPLES, deploy, serving, start, wait_for, wait_for_tasks
from workers.twin.worker import build_worker

WHAT_IF = {
    "arrival_rate_per_s": 1 / 300,
    "durations": {"approve": {"kind": "exponential", "mean": 600}, "notify": {"kind": "fixed", "value": 2}},
    "capacities": {"group:approvers": 3},
    "branches": {"needs_approval": {"approve": 0.4}},
}


@pytest.fixture(scope="module")
async def twin_pool(client: Client, session_factory: sessionmaker[Session]) -> AsyncIterator[None]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-test") as executor:
        async with build_worker(client, session_factory, executor):
            yield


async def _finished(
    api: httpx.AsyncClient, simulation: str, timeout: float = 120
) -> tuple[dict[str, Any], list[float]]:
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view: dict[str, Any] = (await api.get(f"/twin/simulations/{simulation}")).json()
        if view["status"] != "running":
            return view, seen
        if view["progress"] is not None:
            seen.append(view["progress"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"simulation {simulation} still running after {timeout} s")


async def test_a_what_if_through_the_api(api: httpx.AsyncClient, twin_pool: None) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    body = {"definition_key": "order_approval", "horizon": "P20D", "replications": 8, "seed": 3,
            "overrides": WHAT_IF, "sla": "PT30M"}  # fmt: skip
    accepted = await api.post("/twin/simulations", json=body)
    assert accepted.status_code == 202, accepted.text
    simulation = accepted.json()["id"]
    view, _ = await _finished(api, simulation)
    assert view["status"] == "completed" and view["progress"] == 1.0, view
    result = view["result"]
    simulated = result["simulation"]
    assert result["definition_key"] == "order_approval" and simulated["replications"] == 8
    # 40 % of orders wait for one of 3 approvers busy 0.4 x 600 / 300 / 3 = 27 % of the time: an
    # M/M/3 wait of ~9 s on top of the 600 s work, so the mean is ~0.4 x 609 + 2 ≈ 246 s
    assert 200 < result["cycle_time_mean_s"] < 290, result["cycle_time_mean_s"]
    utilisation = simulated["resources"]["group:approvers"]["utilisation"]["mean"]
    assert 0.2 < utilisation < 0.34, utilisation
    # P(breach) = P(approval) x P(600 s exponential work exceeds 30 min) = 0.4 x e^-3 ≈ 0.02
    assert 0.01 < result["sla_breach_probability"] < 0.035, result["sla_breach_probability"]
    assert simulated["parameters"]["capacities"]["group:approvers"]["source"] == "manual"
    for name in ("cycle-time", "utilisation"):
        plot = await api.get(f"/twin/simulations/{simulation}/plots/{name}.svg")
        assert plot.status_code == 200 and plot.headers["content-type"].startswith("image/svg+xml")
        assert plot.text.lstrip().startswith(("<svg", "<?xml")) and "</svg>" in plot.text
    # the same seed, the same figures: a what-if is reproducible
    again, _ = await _finished(api, (await api.post("/twin/simulations", json=body)).json()["id"])
    assert again["result"]["cycle_time_mean_s"] == result["cycle_time_mean_s"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"definition_key": "no_such_process"}, 404, "no_such_process"),
        ({"definition_key": "order_approval", "horizon": "soon"}, 422, "'horizon' must be an ISO 8601 duration"),
        ({"definition_key": "order_approval", "overrides": {"capacities": {"group:approvers": 0}}}, 422, "capacity"),
        ({"definition_key": "order_approval", "replications": 0}, 422, "replications"),
        ({"definition_key": "order_approval", "colour": "red"}, 422, "colour"),
    ],
    ids=["unknown-definition", "bad-horizon", "bad-capacity", "no-replications", "unknown-field"],
)
async def test_bad_requests_are_refused_before_anything_runs(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, message: str
) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    response = await api.post("/twin/simulations", json=body)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])
    missing = await api.get("/twin/simulations/sim-00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


async def test_a_simulation_reports_progress_and_can_be_cancelled(api: httpx.AsyncClient, twin_pool: None) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    body = {"definition_key": "order_approval", "horizon": "P365D", "replications": 200,
            "overrides": {**WHAT_IF, "arrival_rate_per_s": 0.05}}  # fmt: skip
    simulation = (await api.post("/twin/simulations", json=body)).json()["id"]
    for _ in range(300):
        view = (await api.get(f"/twin/simulations/{simulation}")).json()
        if view["phase"] == "simulating" and view["progress"]:
            break
        await asyncio.sleep(0.1)
    assert view["status"] == "running" and 0 < view["progress"] < 1, view
    assert (await api.post(f"/twin/simulations/{simulation}/cancel")).status_code == 202
    started = time.monotonic()
    view, _ = await _finished(api, simulation, timeout=30)
    print(f"twin cancellation: {time.monotonic() - started:.1f} s from the request to the status")
    assert view["status"] == "cancelled" and time.monotonic() - started < 15, view
    assert (await api.get(f"/twin/simulations/{simulation}/plots/cycle-time.svg")).status_code == 409


async def test_a_process_asks_the_twin_before_a_decision(api: httpx.AsyncClient, twin_pool: None) -> None:
    await deploy(api, EXAMPLES / "order_approval.bpmn")
    await deploy(api, DATA / "twin_service_task.bpmn", expect=201)
    one = await start(api, "capacity_change", {"rate": 1 / 600, "approvers": 1})
    three = await start(api, "capacity_change", {"rate": 1 / 600, "approvers": 3})
    await wait_for_tasks(api, one, timeout=120)
    await wait_for_tasks(api, three, timeout=120)
    fewer = (await api.get(f"/instances/{one}")).json()["variables"]
    more = (await api.get(f"/instances/{three}")).json()["variables"]
    # one approver queues the approvals; three hardly do: the approver sees that before deciding
    assert fewer["predicted_p90_s"] > more["predicted_p90_s"] > 0
    assert 0 <= more["predicted_breach"] <= fewer["predicted_breach"] <= 1


class _Services:
    """The services the validation process calls: known delay distributions, drawn from a seeded stream."""

    def __init__(self) -> None:
        self.random = random.Random(11)
        self.lock = threading.Lock()

    def delay(self, path: str) -> float:
        with self.lock:
            return self.random.expovariate(1 / 0.6) if path == "/check" else self.random.uniform(0.3, 0.9)


@contextmanager
def _delaying_server(services: _Services) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(services.delay(self.path))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with serving(Handler) as server:
        yield f"http://127.0.0.1:{server.server_port}"


async def test_the_twin_calibrated_from_the_audit_predicts_the_platform(
    api: httpx.AsyncClient, twin_pool: None
) -> None:
    """Instances run for real against services with known delays (check: exponential, mean 0.6 s; inspect:
    uniform 0.3-0.9 s on half the instances), arriving as a Poisson stream; the twin is calibrated from
    their audit history alone and must predict their mean cycle time within 10 %."""
    await deploy(api, DATA / "twin_validation.bpmn", expect=201)
    arrivals = random.Random(5)
    ids: list[str] = []
    started: list[float] = []
    with _delaying_server(_Services()) as url:
        for _ in range(150):
            ids.append(await start(api, "twin_validation", {"service": url, "deep": arrivals.random() < 0.5}))
            started.append(time.monotonic())
            await asyncio.sleep(arrivals.expovariate(4.0))
        for instance in ids:
            await wait_for(api, instance, "completed", timeout=120)
    cycles = []
    for instance in ids:
        for _ in range(100):  # the last entries arrive with the status projector
            history = (await api.get(f"/instances/{instance}/history")).json()
            times = {r["action"]: datetime.fromisoformat(r["occurred_at"]) for r in history}
            if "instance.completed" in times:
                break
            await asyncio.sleep(0.1)
        cycles.append((times["instance.completed"] - times["instance.started"]).total_seconds())
    measured = statistics.mean(cycles)

    body = {"definition_key": "twin_validation", "calibrate_from": "all", "horizon": "PT2H", "replications": 4}
    view, _ = await _finished(api, (await api.post("/twin/simulations", json=body)).json()["id"])
    assert view["status"] == "completed", view
    result = view["result"]
    calibration = result["calibration"]
    assert calibration["instances"] >= 150
    assert 0.35 < calibration["branches"]["deep"]["probabilities"]["inspect"] < 0.65
    # 4 per second were asked for, less the time each start takes (more on a loaded machine): the
    # twin must find the rate they really arrived at, as this side saw it
    offered = (len(started) - 1) / (started[-1] - started[0])
    assert abs(calibration["arrival_rate_per_s"] / offered - 1) < 0.10, (calibration["arrival_rate_per_s"], offered)
    predicted = result["cycle_time_mean_s"]
    print(f"twin validation: predicted {predicted:.3f} s, measured {measured:.3f} s")
    assert abs(predicted - measured) / measured < 0.10, (predicted, measured, calibration["durations"])


async def test_simulations_follow_roles_and_tenants(api: httpx.AsyncClient, twin_pool: None) -> None:
    suffix = uuid.uuid4().hex[:8]
    xml = (
        (EXAMPLES / "order_approval.bpmn")
        .read_text(encoding="utf-8")
        .replace('"order_approval"', f'"tenant_orders_{suffix}"')
    )
    modeler_a = bearer((await create_key(api, "modeler", tenant=f"a-{suffix}"))["key"])
    operator_a = bearer((await create_key(api, "operator", tenant=f"a-{suffix}"))["key"])
    operator_b = bearer((await create_key(api, "operator", tenant=f"b-{suffix}"))["key"])
    approver_a = bearer((await create_key(api, "approver", tenant=f"a-{suffix}"))["key"])
    files = [("files", ("orders.bpmn", xml.encode(), "application/xml"))]
    assert (await api.post("/deployments", files=files, headers=modeler_a)).status_code == 201
    body = {"definition_key": f"tenant_orders_{suffix}", "horizon": "P1D", "replications": 2, "overrides": WHAT_IF}
    assert (await api.post("/twin/simulations", json=body, headers=approver_a)).status_code == 403
    assert (await api.post("/twin/simulations", json=body, headers=operator_b)).status_code == 404  # not b's model
    simulation = (await api.post("/twin/simulations", json=body, headers=operator_a)).json()["id"]
    view, _ = await _finished(api, simulation)  # the platform-wide admin sees every tenant's
    assert view["status"] == "completed" and view["requested_by"]
    assert (await api.get(f"/twin/simulations/{simulation}", headers=operator_a)).status_code == 200
    assert (await api.get(f"/twin/simulations/{simulation}", headers=operator_b)).status_code == 404
    plot = await api.get(f"/twin/simulations/{simulation}/plots/utilisation.svg", headers=operator_b)
    assert plot.status_code == 404
