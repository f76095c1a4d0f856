"""A loop of 100,000 iterations on the platform that never leaves the workflow: an exclusive gateway and
a business rule task counting (tests/data/inline_loop.bpmn with inline_next.dmn, the model
tests/test_long_loops.py runs at 5,000).

Run: `python -m benchmarks.bench_inline_loop` (rewrites its block of BENCHMARKS.md; `--iterations`
changes the size). The instance runs on a Temporal dev server (SQLite, WAL) with the engine worker in
this process and a SQLite platform store (its audit trail: every element entered and left). Engine
passes are bounded (`PASS_STEPS` tasks each, then a 1 ms timer ends the workflow task), so each
timer marks PASS_STEPS tasks done: tasks per second over the first and the last tenth of those marks
show whether a step costs more as the instance grows. Targets: every run's history ≤ 10,240 events;
last/first ≥ 0.8; the counter ends at the iteration count.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from benchmarks.dev_platform import dev_platform
from benchmarks.report import cpu_name, publish
from bpmn import runtime
from bpmn.definitions import DeployableDefinition, load_process, start_input, validate_upload
from workers.engine import build_worker
from workflows.contracts import ENGINE_TASK_QUEUE, PROCESS_WORKFLOW, ProcessResult
from workflows.process_engine import PASS_STEPS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TEMPORAL_WARNING = 10_240


async def _histories(client: Client, instance_id: str) -> tuple[list[int], list[float]]:
    """Every run's event count, and the times the bounded passes ended (timers fired), oldest first."""
    executions = sorted([e async for e in client.list_workflows(f"WorkflowId = '{instance_id}'")],
                        key=lambda e: e.start_time)  # fmt: skip
    lengths, marks = [], []
    for execution in executions:
        history = await client.get_workflow_handle(instance_id, run_id=execution.run_id).fetch_history()
        lengths.append(len(history.events))
        marks += [e.event_time.ToDatetime().timestamp() for e in history.events
                  if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]  # fmt: skip
    return lengths, sorted(marks)


async def benchmark(iterations: int) -> dict[str, float]:
    files = {name: (DATA / name).read_bytes() for name in ("inline_loop.bpmn", "inline_next.dmn")}
    [definition] = validate_upload(files)
    async with dev_platform() as (client, sessions), build_worker(client, sessions):
        instance_id = f"bench-inline-{uuid.uuid4().hex[:8]}"
        inp = start_input(
            instance_id=instance_id, key=definition.key, version=1, digest=definition.hash,
            files=definition.files, variables={"i": 0, "n": iterations},
        )  # fmt: skip
        began = time.perf_counter()
        result: ProcessResult = await client.execute_workflow(
            PROCESS_WORKFLOW, inp, id=instance_id, task_queue=ENGINE_TASK_QUEUE, result_type=ProcessResult
        )
        wall = time.perf_counter() - began
        if result.variables != {"i": iterations, "n": iterations}:
            raise RuntimeError(f"the loop ended with {result.variables}")
        lengths, marks = await _histories(client, instance_id)
    memory_s = _in_memory(definition, iterations)
    tenth = max(len(marks) // 10, 2)
    early = (tenth - 1) * PASS_STEPS / (marks[tenth - 1] - marks[0])
    late = (tenth - 1) * PASS_STEPS / (marks[-1] - marks[-tenth])
    return {"iterations": iterations, "wall_s": wall, "runs": len(lengths), "largest": max(lengths),
            "events": sum(lengths), "passes": len(marks), "early": early, "late": late,
            "memory_s": memory_s}  # fmt: skip


def _in_memory(definition: DeployableDefinition, iterations: int) -> float:
    """The same loop in SpiffWorkflow in this process, unbounded and unaudited: seconds."""
    process = load_process(definition.files, definition.key, definition.hash)
    workflow = runtime.new_workflow(process, {"i": 0, "n": iterations})
    began = time.perf_counter()
    runtime.run_engine(workflow)
    if runtime.variables(workflow) != {"i": iterations, "n": iterations}:
        raise RuntimeError(f"the loop in memory ended with {runtime.variables(workflow)}")
    return time.perf_counter() - began


def render(m: dict[str, float], command: str) -> str:
    largest = int(m["largest"])
    verdict = "meets" if largest <= TEMPORAL_WARNING else "does **not** meet"
    ratio = m["late"] / m["early"]
    return "\n".join(
        [
            "## A 100,000-iteration loop on the platform",
            "",
            f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {cpu_name()} ({platform.machine()}), Python "
            f"{platform.python_version()}; Temporal dev server (SQLite, WAL), engine worker in this process, SQLite "
            "platform store. The loop: an exclusive gateway and a business rule task that counts "
            "(tests/data/inline_loop.bpmn), no activity and no wait; every element entered and left is audited. "
            "The result was checked (the counter ends at the iteration count).",
            "",
            "| iterations | wall (s) | iterations/s | runs | largest run (events) | all runs (events) "
            "| bounded passes | tasks/s, first tenth | tasks/s, last tenth | last/first |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {int(m['iterations']):,} | {m['wall_s']:.0f} | {m['iterations'] / m['wall_s']:.0f} | {int(m['runs'])} "
            f"| {largest:,} | {int(m['events']):,} | {int(m['passes']):,} | {m['early']:.0f} | {m['late']:.0f} "
            f"| {ratio:.2f} |",
            "",
            f"Largest run: {largest:,} events: {verdict} the target of ≤ {TEMPORAL_WARNING:,}. Tasks/s over the "
            f"last tenth against the first: {ratio:.2f} (target ≥ 0.8). Each bounded pass runs {PASS_STEPS:,} tasks "
            "and ends its workflow task with a 1 ms timer, and every element entered and left is audited. The same "
            "loop in SpiffWorkflow in memory in the same run (one unbounded pass, no audit, no Temporal): "
            f"{m['memory_s']:.0f} s, {m['iterations'] / m['memory_s']:.0f} iterations/s; the platform took "
            f"{m['wall_s'] / m['memory_s']:.1f}x as long.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="'-' prints instead")
    args = parser.parse_args(argv)
    if args.iterations < 2 * PASS_STEPS:  # each pass runs PASS_STEPS tasks, ~3 an iteration: rates need passes
        parser.error(f"--iterations: at least {2 * PASS_STEPS:,}, so that passes can be timed")
    command = "python -m benchmarks.bench_inline_loop " + " ".join(argv if argv is not None else sys.argv[1:])
    measured = asyncio.run(benchmark(args.iterations))
    body = render(measured, command.strip())
    publish(body, args.output, "inline-loop", script="benchmarks.bench_inline_loop")


if __name__ == "__main__":
    main()
