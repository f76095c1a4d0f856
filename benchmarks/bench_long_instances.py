"""Instances too long for one Temporal run: a loop of thousands of service tasks and a 1,000-way parallel
multi-instance, on the real engine worker at the default history limit (workflows/history_budget.py).

Run: `python -m benchmarks.bench_long_instances` (rewrites its block of BENCHMARKS.md; `--iterations`
and `--width` change the sizes: 3,000 and 1,000 by default. Every iteration of a loop is one activity
round trip, ~100 ms on the dev server here for the hand-written loop as for ours, so 100,000 iterations
take ~3 hours: `--iterations 100000` runs them). Each instance runs on a Temporal dev server (SQLite, WAL) with the
engine worker and a trivial activity (`bench.step`, benchmarks/baseline.py), so what is measured is
orchestration. The benchmark checks each result (the loop's counter, the fan-out's results in item
order), then reads every run's history: how many runs, the largest history, and steps per second
over the first and the last tenth of the loop, whose ratio shows whether a step costs more as the
instance grows. Targets: every run's history ≤ 10,240 events; late/early steps/s ≥ 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from benchmarks.baseline import (
    BASELINE_LOOP_WORKFLOW,
    BASELINE_TASK_QUEUE,
    BENCH_POOL,
    BENCH_POOL_PREFIX,
    BENCH_TASK_QUEUE,
    BaselineLoopInput,
    BaselineLoopWorkflow,
    bench_step,
)
from benchmarks.dev_platform import dev_platform
from benchmarks.report import cpu_name, publish
from bpmn.definitions import DeployableDefinition, start_input, validate_upload
from bpmn.operators import registry
from workers.engine import build_worker, workflow_runner
from workflows.contracts import ENGINE_TASK_QUEUE, PROCESS_WORKFLOW, ProcessResult
from workflows.history_budget import DEFAULT_LIMIT, HistoryBudget

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_WARNING = 10_240  # events per run at which Temporal warns; the target is to stay under it


KINDS = {
    "wide_fan_out": "parallel multi-instance (BPMN)",
    "long_loop": "loop of service tasks (BPMN)",
    "baseline_loop": "hand-written Temporal loop, continue-as-new every 1,000",
}


@dataclass
class Outcome:
    name: str
    size: int
    wall_s: float
    runs: int
    longest: int  # events in the largest run's history
    total_events: int
    early_rate: float | None = None  # steps/s over the first tenth (loop only)
    late_rate: float | None = None  # … and over the last tenth


def _definition(name: str) -> DeployableDefinition:
    path = ROOT / "benchmarks" / f"{name}.bpmn"
    return validate_upload({path.name: path.read_bytes()})[0]


async def _runs(client: Client, instance_id: str) -> list[list[float]]:
    """Every run's activity completion times (seconds since the epoch), oldest run first."""
    executions = [e async for e in client.list_workflows(f"WorkflowId = '{instance_id}'")]
    executions.sort(key=lambda e: e.start_time)
    runs = []
    for execution in executions:
        if execution.status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CONTINUED_AS_NEW):
            raise RuntimeError(f"run {execution.run_id} ended {execution.status}")
        history = await client.get_workflow_handle(instance_id, run_id=execution.run_id).fetch_history()
        done = [
            e.event_time.ToDatetime().timestamp()
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        ]
        runs.append([float(len(history.events)), *done])
    return runs


async def _run(
    client: Client, definition: DeployableDefinition, variables: dict[str, object]
) -> tuple[str, float, ProcessResult]:
    instance_id = f"bench-long-{definition.key}-{uuid.uuid4().hex[:8]}"
    inp = start_input(
        instance_id=instance_id, key=definition.key, version=1, digest=definition.hash, files=definition.files,
        variables=variables,
    )  # fmt: skip
    began = time.perf_counter()
    result: ProcessResult = await client.execute_workflow(
        PROCESS_WORKFLOW, inp, id=instance_id, task_queue=ENGINE_TASK_QUEUE, result_type=ProcessResult
    )
    return instance_id, time.perf_counter() - began, result


async def _measure(client: Client, name: str, size: int) -> Outcome:
    if name == "baseline_loop":
        instance_id = f"bench-long-baseline-{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        counted = await client.execute_workflow(
            BASELINE_LOOP_WORKFLOW, BaselineLoopInput(size), id=instance_id, task_queue=BASELINE_TASK_QUEUE,
            result_type=int,
        )  # fmt: skip
        wall = time.perf_counter() - began
        if counted != size:
            raise RuntimeError(f"the baseline loop counted {counted}")
        return _outcome(name, size, wall, await _runs(client, instance_id))
    definition = _definition(name)
    if name == "long_loop":
        instance_id, wall, result = await _run(client, definition, {"i": 0, "total": size})
        if result.variables.get("i") != size:
            raise RuntimeError(f"the loop ended with {result.variables}")
    else:
        items = list(range(1, size + 1))
        instance_id, wall, result = await _run(client, definition, {"items": items})
        if result.variables.get("results") != [2 * item for item in items]:
            raise RuntimeError(f"the fan-out's results are wrong: {str(result.variables)[:200]}")
    return _outcome(name, size, wall, await _runs(client, instance_id))


def _outcome(name: str, size: int, wall: float, runs: list[list[float]]) -> Outcome:
    lengths = [int(run[0]) for run in runs]
    outcome = Outcome(name, size, wall, len(runs), max(lengths), sum(lengths))
    if name != "wide_fan_out":
        times = sorted(t for run in runs for t in run[1:])
        tenth = max(len(times) // 10, 2)
        outcome.early_rate = (tenth - 1) / (times[tenth - 1] - times[0])
        outcome.late_rate = (tenth - 1) / (times[-1] - times[-tenth])
    return outcome


async def benchmark(iterations: int, width: int, *, memory: bool) -> list[Outcome]:
    registry.register(BENCH_POOL_PREFIX, BENCH_POOL)
    async with dev_platform(memory=memory) as (client, sessions):
        engine = build_worker(client, sessions)
        steps = Worker(client, task_queue=BENCH_TASK_QUEUE, activities=[bench_step], max_concurrent_activities=200)
        baseline = Worker(
            client, task_queue=BASELINE_TASK_QUEUE, workflows=[BaselineLoopWorkflow],
            workflow_runner=workflow_runner(),  # the engine's sandbox settings: only the workflow differs
        )  # fmt: skip
        outcomes: list[Outcome] = []
        async with engine, steps, baseline:
            for name, size in (("wide_fan_out", width), ("long_loop", iterations), ("baseline_loop", iterations)):
                outcomes.append(await _measure(client, name, size))
                print(_line(outcomes[-1]), flush=True)
    return outcomes


def _line(o: Outcome) -> str:
    rates = f", steps/s first tenth {o.early_rate:.0f}, last tenth {o.late_rate:.0f}" if o.early_rate else ""
    return f"{o.name} ({o.size:,}): {o.wall_s:.1f} s, {o.runs} runs, largest history {o.longest:,} events{rates}"


def render(outcomes: list[Outcome], command: str, *, memory: bool) -> str:
    budget = HistoryBudget(DEFAULT_LIMIT)
    rows = [
        "| instance | size | wall (s) | runs | largest run (events) | all runs (events) "
        "| steps/s, first tenth | steps/s, last tenth | last/first |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        ratio = f"{o.late_rate / o.early_rate:.2f}" if o.early_rate and o.late_rate else "-"
        early = f"{o.early_rate:.0f}" if o.early_rate else "-"
        late = f"{o.late_rate:.0f}" if o.late_rate else "-"
        rows.append(
            f"| {KINDS[o.name]} | {o.size:,} | {o.wall_s:.1f} | {o.runs} | {o.longest:,} | {o.total_events:,} "
            f"| {early} | {late} | {ratio} |"
        )
    loop = next(o for o in outcomes if o.name == "long_loop")
    hand = next(o for o in outcomes if o.name == "baseline_loop")
    largest = max(o.longest for o in outcomes if o.name != "baseline_loop")
    verdict = "meets" if largest <= TEMPORAL_WARNING else "does **not** meet"
    return "\n".join(
        [
            "## Long instances: continue-as-new",
            "",
            f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {cpu_name()} ({platform.machine()}), Python "
            f"{platform.python_version()}; Temporal dev server ({'in memory' if memory else 'SQLite, WAL'}), "
            "engine worker and `bench.step` workers "
            f"in this process. History limit {budget.limit:,} events (drain from there; activities start only while "
            f"they fit under {budget.ceiling:,}). Both results were checked (the loop's counter; the fan-out's "
            f"results in item order).",
            "",
            *rows,
            "",
            f"Largest run: {largest:,} events: {verdict} the target of ≤ {TEMPORAL_WARNING:,} (Temporal's warning). "
            "The loop's steps/s over its last tenth against its first shows whether a step costs more as the "
            "instance grows (target ≥ 0.8).",
            "",
            f"Against the hand-written Temporal loop on the same server in the same run: the BPMN loop took "
            f"{loop.wall_s / hand.wall_s:.2f}x its wall time ({loop.size / loop.wall_s:.1f} against "
            f"{hand.size / hand.wall_s:.1f} iterations/s).",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3_000)
    parser.add_argument("--width", type=int, default=1_000)
    parser.add_argument("--memory", action="store_true", help="the dev server keeps its state in memory")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="'-' prints instead")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.bench_long_instances " + " ".join(argv if argv is not None else sys.argv[1:])
    outcomes = asyncio.run(benchmark(args.iterations, args.width, memory=args.memory))
    body = render(outcomes, command.strip(), memory=args.memory)
    publish(body, args.output, "long-instances", script="benchmarks.bench_long_instances")


if __name__ == "__main__":
    main()
