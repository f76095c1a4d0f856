"""The digital twin (workers/twin): queueing theory, models built from real BPMN, calibration from history.

Plain tests: no Temporal, no API. Each simulation is seeded, so every figure asserted here is the
same on every run; the tolerances are what the model's randomness allows at these run lengths, not
slack for flakiness.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lxml import etree

from workers.twin import engine
from workers.twin.calibration import calibrate
from workers.twin.distributions import Distribution, fit
from workers.twin.model import NodeKind, build_model, model_from_file
from workers.twin.params import SimulationParams, resolve
from workers.twin.plots import cycle_time_histogram_svg, utilisation_svg
from workers.twin.results import Estimate
from workers.twin.simulation import SimulationCancelled, simulate

pytestmark = pytest.mark.backend_free  # no platform database: once, in the SQLite pass

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "data"

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)

ONE_TASK = (DATA / "twin_one_task.bpmn").read_text(encoding="utf-8")  # also the M/M/c of bench_twin

PARALLEL = (
    _HEAD
    + """  <bpmn:process id="parallel" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:parallelGateway id="split">
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>fa</bpmn:outgoing><bpmn:outgoing>fb</bpmn:outgoing>
    </bpmn:parallelGateway>
    <bpmn:scriptTask id="short">
      <bpmn:incoming>fa</bpmn:incoming><bpmn:outgoing>fa2</bpmn:outgoing><bpmn:script>a = 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:scriptTask id="long">
      <bpmn:incoming>fb</bpmn:incoming><bpmn:outgoing>fb2</bpmn:outgoing><bpmn:script>b = 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:parallelGateway id="join">
      <bpmn:incoming>fa2</bpmn:incoming><bpmn:incoming>fb2</bpmn:incoming><bpmn:outgoing>f9</bpmn:outgoing>
    </bpmn:parallelGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f9</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="split" />
    <bpmn:sequenceFlow id="fa" sourceRef="split" targetRef="short" />
    <bpmn:sequenceFlow id="fb" sourceRef="split" targetRef="long" />
    <bpmn:sequenceFlow id="fa2" sourceRef="short" targetRef="join" />
    <bpmn:sequenceFlow id="fb2" sourceRef="long" targetRef="join" />
    <bpmn:sequenceFlow id="f9" sourceRef="join" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
)


def _mean(value: object) -> float:
    assert isinstance(value, Estimate)
    return value.mean


# -- 1. against queueing theory ------------------------------------------------------------------


def _erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    a = arrival_rate / service_rate
    below = sum(a**k / math.factorial(k) for k in range(servers))
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    return top / (below + top) / (servers * service_rate - arrival_rate)


def test_mmc_matches_erlang_c() -> None:
    """M/M/3 at rho = 0.8 (λ = 2.4/s, mean service 1 s): mean wait, queue length and utilisation as theory says."""
    model = build_model({"one_task.bpmn": ONE_TASK}, "one_task")
    params = SimulationParams(
        arrival_rate_per_s=2.4,
        durations={"work": Distribution.exponential(1.0)},
        capacities={"group:clerks": 3},
        warmup_s=500,
    )
    result = simulate(model, params, replications=12, horizon_s=50_000, seed=11)
    theory = _erlang_c_wait(2.4, 1.0, 3)  # 1.0787 s
    wait = _mean(result.elements["work"]["mean_wait_s"])
    assert abs(wait - theory) / theory < 0.05, (wait, theory)
    queue = _mean(result.resources["group:clerks"]["mean_queue_length"])
    assert abs(queue - 2.4 * theory) / (2.4 * theory) < 0.05  # Little: Lq = λ Wq
    assert abs(_mean(result.resources["group:clerks"]["utilisation"]) - 0.8) < 0.01
    assert abs(result.cycle_time["mean"].mean - (theory + 1.0)) / (theory + 1.0) < 0.05
    assert abs(result.throughput_per_hour.mean - 2.4 * 3600) / (2.4 * 3600) < 0.02
    assert result.bottleneck is not None and result.bottleneck["element"] == "work"
    assert result.unfinished == 0


def test_light_status_changes_nothing() -> None:
    """The engine's stand-in for salabim's status monitors gives the same run, event for event."""
    model = build_model({"one_task.bpmn": ONE_TASK}, "one_task")
    params = SimulationParams(
        arrival_rate_per_s=2.4, durations={"work": Distribution.exponential(1.0)}, capacities={"group:clerks": 3}
    )
    fast = simulate(model, params, replications=2, horizon_s=2_000, seed=5)
    engine.LIGHT_STATUS = False
    try:
        plain = simulate(model, params, replications=2, horizon_s=2_000, seed=5)
    finally:
        engine.LIGHT_STATUS = True
    assert fast.events == plain.events
    assert fast.cycle_time_pooled == plain.cycle_time_pooled


# -- 2. models built from real BPMN --------------------------------------------------------------


def test_order_approval_structure_and_branches() -> None:
    model = model_from_file(EXAMPLES / "order_approval.bpmn")
    assert model.process_id == "order_approval"
    assert model.node("needs_approval").kind == NodeKind.EXCLUSIVE
    assert model.node("needs_approval").branches == ["approve", "auto_approve"]
    assert model.node("merge").inputs == ["approve", "auto_approve"]
    assert model.node("approve").resource == "group:approvers"
    assert model.node("notify").resource == "pool:http"
    assert model.node("notify").element_type == "ExternalServiceTask"
    assert set(model.resources) == {"group:approvers", "pool:http"}

    params = SimulationParams(
        arrival_rate_per_s=1 / 60,
        durations={"approve": Distribution.fixed(30), "notify": Distribution.fixed(2)},
        capacities={"group:approvers": 5},
        branches={"needs_approval": {"approve": 0.3}},
        sla_s=20,
    )
    result = simulate(model, params, replications=3, horizon_s=200_000, seed=3)
    approve_share = _mean(result.elements["approve"]["visits_per_instance"])
    assert abs(approve_share - 0.3) < 0.02
    assert result.parameters["branches"]["needs_approval"]["auto_approve"]["probability"] == pytest.approx(0.7)
    # 30 % take 32 s, the rest 2 s (5 approvers for one order a minute: no waiting to speak of)
    assert result.cycle_time["mean"].mean == pytest.approx(0.3 * 32 + 0.7 * 2, rel=0.05)
    assert result.cycle_time["p50"].mean == pytest.approx(2.0)
    assert result.sla is not None
    assert _mean(result.sla["breach_probability"]) == pytest.approx(0.3, abs=0.02)


def test_invoice_triage_candidate_group_and_gpu_pool() -> None:
    model = model_from_file(EXAMPLES / "invoice_triage.bpmn")
    assert model.node("review").resource == "group:accounting"  # zeebe:assignmentDefinition candidateGroups
    assert model.node("classify").resource == "pool:gpu"  # operator gpu.classify
    assert model.node("confident").default_output == "review"
    assert model.resources["pool:gpu"].capacity is None  # unlimited until given
    with pytest.raises(ValueError, match="no resource"):
        resolve(model, SimulationParams(arrival_rate_per_s=1, capacities={"group:nobody": 2}))
    with pytest.raises(ValueError, match="add up to 1"):
        resolve(model, SimulationParams(arrival_rate_per_s=1, branches={"confident": {"review": 0.8, "merge": 0.7}}))


def test_parallel_join_waits_for_every_branch() -> None:
    model = build_model({"parallel.bpmn": PARALLEL}, "parallel")
    assert model.node("split").outputs == ["short", "long"]
    assert model.node("join").inputs == ["short", "long"]
    params = SimulationParams(
        arrival_rate_per_s=0.01, durations={"short": Distribution.fixed(2), "long": Distribution.fixed(5)}
    )
    result = simulate(model, params, replications=2, horizon_s=50_000, seed=1)
    assert result.instances > 500
    assert result.cycle_time["mean"].mean == pytest.approx(5.0)  # the longer branch, not the sum (7)
    assert result.cycle_time_pooled["p99"] == pytest.approx(5.0)


def test_subprocess_inclusive_gateway_and_parallel_fan_out() -> None:
    """tests/data/gateways.bpmn: a parallel fan-out to a service task, a user task and an embedded
    subprocess with an inclusive split and join; the instance ends when the slowest branch does."""
    model = model_from_file(DATA / "gateways.bpmn")
    assert model.node("sub_c").kind == NodeKind.SUBPROCESS and model.node("sub_c").child_scope == "sub_c"
    assert model.starts["sub_c"] == "c_start"
    assert model.node("c_split").default_output == "c_default_task"
    params = SimulationParams(
        arrival_rate_per_s=0.001,
        durations={
            "call_a": Distribution.fixed(3),
            "review_b": Distribution.fixed(4),
            "c_big_task": Distribution.fixed(10),
            "c_even_task": Distribution.fixed(6),
            "c_default_task": Distribution.fixed(1),
        },
        capacities={"group:approvers": 50},
        branches={"c_split": {"c_big_task": 0.5, "c_even_task": 0.5}},
    )
    result = simulate(model, params, replications=2, horizon_s=400_000, seed=2)
    # subprocess: 10 if "big" fires (½); else 6 if "even" fires (¼); else the default, 1 (¼) → max with 4
    expected = 0.5 * 10 + 0.25 * 6 + 0.25 * 4
    assert result.cycle_time["mean"].mean == pytest.approx(expected, rel=0.05)
    assert result.cycle_time_pooled["p99"] == pytest.approx(10.0)
    assert result.unfinished == 0
    assert _mean(result.elements["c_default_task"]["visits_per_instance"]) == pytest.approx(0.25, abs=0.03)


def test_timer_waits_its_literal_duration() -> None:
    model = model_from_file(DATA / "timers.bpmn", "wait_three_days")
    assert model.node("wait").timer_s == 3 * 86400
    result = simulate(
        model, SimulationParams(arrival_rate_per_s=1 / 3600), replications=1, horizon_s=30 * 86400, seed=4
    )
    assert result.cycle_time_pooled["p50"] == pytest.approx(3 * 86400)
    assert result.cycle_time_pooled["p99"] == pytest.approx(3 * 86400)


def test_boundary_event_branch() -> None:
    """examples/supplier_onboarding.bpmn: an interrupting boundary timer sends 20 % to escalation."""
    model = model_from_file(EXAMPLES / "supplier_onboarding.bpmn")
    assert model.node("review").boundary == ["review_overdue"]
    assert model.node("review_overdue").attached_to == "review"
    params = SimulationParams(
        arrival_rate_per_s=1 / 3600,
        durations={
            "review": Distribution.fixed(600),
            "review_escalated": Distribution.fixed(60),
            "registry_check": Distribution.fixed(5),
        },
        capacities={"group:approvers": 20},
        branches={"review": {"review_overdue": 0.2}},
    )
    result = simulate(model, params, replications=2, horizon_s=60 * 86400, seed=8)
    assert _mean(result.elements["review_escalated"]["visits_per_instance"]) == pytest.approx(0.2, abs=0.03)
    assert result.cycle_time["mean"].mean == pytest.approx(600 + 0.2 * 60, rel=0.02)


LOOP = (
    _HEAD
    + """  <bpmn:process id="loop" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="again_in"><bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>f_back</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:userTask id="fix"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:exclusiveGateway id="ok" default="f_done"><bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f_back</bpmn:outgoing><bpmn:outgoing>f_done</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f_done</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="again_in" />
    <bpmn:sequenceFlow id="f2" sourceRef="again_in" targetRef="fix" />
    <bpmn:sequenceFlow id="f3" sourceRef="fix" targetRef="ok" />
    <bpmn:sequenceFlow id="f_back" sourceRef="ok" targetRef="again_in">
      <bpmn:conditionExpression>not good</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_done" sourceRef="ok" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
)


def test_loop_through_an_exclusive_gateway() -> None:
    """Rework: back to the task with probability 0.5, so 2 visits per instance on average (geometric)."""
    model = build_model({"loop.bpmn": LOOP}, "loop")
    assert model.node("again_in").inputs == ["start", "ok"]
    params = SimulationParams(
        arrival_rate_per_s=0.001,
        durations={"fix": Distribution.fixed(10)},
        capacities={"group:approvers": 10},
        branches={"ok": {"again_in": 0.5}},
    )
    result = simulate(model, params, replications=2, horizon_s=2_000_000, seed=6)
    assert _mean(result.elements["fix"]["visits_per_instance"]) == pytest.approx(2.0, rel=0.05)
    assert result.cycle_time["mean"].mean == pytest.approx(20.0, rel=0.05)
    assert result.cycle_time_pooled["p50"] in (10.0, 20.0)


def test_reproducible_progress_and_cancellation() -> None:
    model = build_model({"one_task.bpmn": ONE_TASK}, "one_task")
    params = SimulationParams(
        arrival_rate_per_s=1.0, durations={"work": Distribution.lognormal(1.5, 1.0)}, capacities={"group:clerks": 2}
    )
    seen: list[float] = []
    first = simulate(model, params, replications=3, horizon_s=3_000, seed=9, progress=seen.append)
    again = simulate(model, params, replications=3, horizon_s=3_000, seed=9)
    assert first.to_dict()["cycle_time_s"] == again.to_dict()["cycle_time_s"]
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 100
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls > 50

    with pytest.raises(SimulationCancelled):
        simulate(model, params, replications=3, horizon_s=3_000, seed=9, cancelled=cancelled)


def test_svg_plots() -> None:
    model = model_from_file(EXAMPLES / "order_approval.bpmn")
    params = SimulationParams(
        arrival_rate_per_s=1 / 120,
        durations={"approve": Distribution.exponential(300), "notify": Distribution.fixed(1)},
        capacities={"group:approvers": 2, "pool:http": 1},
    )
    data = simulate(model, params, replications=2, horizon_s=86_400, seed=1).to_dict()
    for svg in (cycle_time_histogram_svg(data), utilisation_svg(data)):
        root = etree.fromstring(svg.encode())
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert len(root.findall("{http://www.w3.org/2000/svg}rect")) > 1
    assert "group:approvers" in utilisation_svg(data)


# -- 3. calibration from audit history -----------------------------------------------------------


def _record(seq: list[int], instance: str, at: float, action: str, element: str | None = None,
            element_type: str | None = None, actor: str | None = None) -> dict[str, Any]:  # fmt: skip
    seq[0] += 1
    return {
        "seq": seq[0],
        "instance_id": instance,
        "instance_seq": seq[0],
        "definition_key": "order_approval",
        "occurred_at": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=at)).isoformat(),
        "actor": actor,
        "action": action,
        "element_id": element,
        "element_type": element_type,
        "data": None,
    }


def _order_approval_history(seed: int, days: int) -> list[dict[str, Any]]:
    """What the platform would have recorded for order_approval: Poisson arrivals (one per 10 min),
    30 % to approval by one of three approvers (first free, first come first served; lognormal work,
    mean 30 min, sd 15 min), then a call taking exponential time (mean 2 s)."""
    rng = np.random.default_rng(seed)
    seq = [0]
    records: list[dict[str, Any]] = []
    free_at = {"ann": 0.0, "bob": 0.0, "cyd": 0.0}
    work = Distribution.lognormal(1800, 900)
    t = 0.0
    number = 0
    while True:
        t += float(rng.exponential(600))
        if t >= days * 86400:
            break
        number += 1
        inst = f"i{number}"

        def passes(at: float, element: str, kind: str, inst: str = inst) -> None:
            records.append(_record(seq, inst, at, "element.entered", element, kind))
            records.append(_record(seq, inst, at, "element.completed", element, kind))

        records.append(_record(seq, inst, t, "instance.started"))
        passes(t, "start", "StartEvent")
        passes(t, "compute_total", "SandboxedScriptTask")
        records.append(_record(seq, inst, t, "element.entered", "needs_approval", "ExclusiveGateway"))
        records.append(_record(seq, inst, t, "element.completed", "needs_approval", "ExclusiveGateway"))
        if rng.random() < 0.3:
            records.append(_record(seq, inst, t, "element.entered", "approve", "UserTask"))
            actor = min(free_at, key=lambda a: free_at[a])
            done = max(t, free_at[actor]) + float(np.exp(rng.normal(work.params["mu"], work.params["sigma"])))
            free_at[actor] = done
            records.append(_record(seq, inst, done, "element.completed", "approve", "UserTask", actor))
        else:
            done = t
            passes(t, "auto_approve", "SandboxedScriptTask")
        passes(done, "merge", "ExclusiveGateway")
        records.append(_record(seq, inst, done, "element.entered", "notify", "ExternalServiceTask"))
        end = done + float(rng.exponential(2.0))
        records.append(_record(seq, inst, end, "element.completed", "notify", "ExternalServiceTask"))
        passes(end, "end", "EndEvent")
        records.append(_record(seq, inst, end, "instance.completed"))
    records.sort(key=lambda r: (r["occurred_at"], r["seq"]))
    return records


def test_calibration_recovers_known_parameters() -> None:
    model = model_from_file(EXAMPLES / "order_approval.bpmn")
    records = _order_approval_history(seed=21, days=60)
    records.append({**records[0], "definition_key": "something_else"})  # another definition's row
    calibration = calibrate(model, records)

    assert calibration.arrival_rate_per_s == pytest.approx(1 / 600, rel=0.03)
    assert calibration.arrival is not None and calibration.arrival.distribution.mean() == pytest.approx(600, rel=0.03)
    assert calibration.arrival.ks_statistic is not None and calibration.arrival.ks_statistic < 0.02

    approve = calibration.durations["approve"]
    assert approve.measure == "work"  # the approvers' own time, not their queue
    assert approve.fit.distribution.kind == "lognormal"
    assert approve.fit.distribution.mean() == pytest.approx(1800, rel=0.05)
    assert approve.fit.distribution.std() == pytest.approx(900, rel=0.1)
    assert approve.sojourn is not None and approve.sojourn.sample_mean > approve.fit.sample_mean
    assert approve.fit.n > 2000

    notify = calibration.durations["notify"]
    assert notify.fit.distribution.kind in ("exponential", "gamma")
    assert notify.fit.distribution.mean() == pytest.approx(2.0, rel=0.05)
    assert notify.fit.ks_statistic is not None and notify.fit.ks_statistic < 0.03

    branch = calibration.branches["needs_approval"]
    assert branch.probabilities["approve"] == pytest.approx(0.3, abs=0.02)
    assert branch.passes == calibration.instances
    assert calibration.approvers["group:approvers"].approvers == ["ann", "bob", "cyd"]
    assert any("other definitions" in w for w in calibration.warnings)

    fitted = calibration.params()
    assert fitted.capacities == {"group:approvers": 3}
    manual = SimulationParams(durations={"approve": Distribution.fixed(60)}, capacities={"group:approvers": 5})
    resolved = resolve(model, fitted.overridden_by(manual)).to_dict()
    assert (
        resolved["durations"]["approve"]["kind"] == "fixed" and resolved["durations"]["approve"]["source"] == "manual"
    )
    assert resolved["durations"]["notify"]["source"] == "calibrated"
    assert resolved["capacities"]["group:approvers"] == {"capacity": 5, "source": "manual"}
    assert resolved["branches"]["needs_approval"]["approve"]["source"] == "calibrated"
    assert resolved["arrival"]["source"] == "calibrated"

    # the calibrated twin reproduces the history's cycle times
    observed = _cycle_times(records)
    result = simulate(model, fitted, replications=4, horizon_s=60 * 86400, seed=3)
    assert result.cycle_time["mean"].mean == pytest.approx(float(np.mean(observed)), rel=0.1)
    assert (
        calibrate(model, records, window=(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))).instances
        < 300
    )
    assert calibration.to_dict()["durations"]["approve"]["fit"]["n"] == approve.fit.n


def _cycle_times(records: list[dict[str, Any]]) -> list[float]:
    started: dict[str, datetime] = {}
    times: list[float] = []
    for r in records:
        at = datetime.fromisoformat(r["occurred_at"])
        if r["action"] == "instance.started" and r["definition_key"] == "order_approval":
            started[r["instance_id"]] = at
        elif r["action"] == "instance.completed":
            times.append((at - started[r["instance_id"]]).total_seconds())
    return times


def test_fit_picks_the_right_shape() -> None:
    rng = np.random.default_rng(0)
    assert fit(rng.gamma(4.0, 10.0, 3000).tolist()).distribution.kind == "gamma"
    assert fit(rng.exponential(5.0, 3000).tolist()).distribution.kind in ("exponential", "gamma")
    assert fit([7.0] * 20).distribution == Distribution.fixed(7.0)
    few = fit([1.0, 2.0, 3.0])
    assert few.distribution.kind == "exponential" and few.note is not None
