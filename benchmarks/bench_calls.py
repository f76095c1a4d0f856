"""What a call activity costs: one service task called (a Temporal child workflow, an instance of its own),
inside an embedded subprocess, and on its own, side by side on one server.

Run: `python -m benchmarks.bench_calls` (rewrites its block of BENCHMARKS.md; `--rounds`, `--instances`
and `--in-flight` change the sizes). The three processes of benchmarks/call_step.bpmn are deployed to a
SQLite store (a call resolves its called definition there) and started as the API starts instances, on a
Temporal dev server (SQLite, WAL) with the engine worker and the trivial `bench.step` activity
(benchmarks/baseline.py) in this process: what is measured is orchestration. Rounds alternate the kinds;
figures are medians across rounds. Each result is checked (the step's answer reached the caller), and
each instance's history is read: a called instance's events count with its caller's.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from benchmarks.baseline import BENCH_POOL, BENCH_POOL_PREFIX, BENCH_TASK_QUEUE, bench_step
from benchmarks.dev_platform import dev_platform
from benchmarks.report import cpu_name, publish
from bpmn.definitions import DeployableDefinition, start_input, validate_upload
from bpmn.operators import registry
from store import definitions
from workers.engine import build_worker
from workflows.contracts import ENGINE_TASK_QUEUE, PROCESS_WORKFLOW, ProcessResult

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "benchmarks" / "call_step.bpmn"
KINDS = {
    "bench_call": "call activity (a child workflow)",
    "bench_embedded": "embedded subprocess",
    "bench_called_step": "the service task on its own",
}


@dataclass
class Round:
    rate: float  # instances/s
    p50_ms: float


@dataclass
class Kind:
    key: str
    rounds: list[Round] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # per instance, its called instance's included

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.rounds)


async def _one(client: Client, definition: DeployableDefinition) -> tuple[str, float]:
    instance_id = str(uuid.uuid4())
    inp = start_input(
        instance_id=instance_id, key=definition.key, version=1, digest=definition.hash, files=definition.files,
        variables={},
    )  # fmt: skip
    began = time.perf_counter()
    result: ProcessResult = await client.execute_workflow(
        PROCESS_WORKFLOW, inp, id=instance_id, task_queue=ENGINE_TASK_QUEUE, result_type=ProcessResult
    )
    if (result.variables.get("r") or {}).get("ok") is not True:
        raise RuntimeError(f"{definition.key}: the step's answer did not arrive: {result.variables}")
    return instance_id, time.perf_counter() - began


async def _round(
    client: Client, definition: DeployableDefinition, instances: int, in_flight: int
) -> tuple[Round, list[str]]:
    gate = asyncio.Semaphore(in_flight)

    async def limited() -> tuple[str, float]:
        async with gate:
            return await _one(client, definition)

    began = time.perf_counter()
    done = await asyncio.gather(*(limited() for _ in range(instances)))
    wall = time.perf_counter() - began
    latencies = sorted(seconds for _, seconds in done)
    return Round(instances / wall, 1000 * latencies[len(latencies) // 2]), [i for i, _ in done]


async def _events(client: Client, instance_id: str) -> int:
    """The instance's history length, with the histories of the instances it called."""
    history = await client.get_workflow_handle(instance_id).fetch_history()
    total = len(history.events)
    for event in history.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            total += len((await client.get_workflow_handle(child).fetch_history()).events)
    return total


async def benchmark(rounds: int, instances: int, in_flight: int) -> list[Kind]:
    registry.register(BENCH_POOL_PREFIX, BENCH_POOL)
    found = {d.key: d for d in validate_upload({MODEL.name: MODEL.read_bytes()})}
    async with dev_platform() as (client, sessions):
        with sessions.begin() as session:
            for d in found.values():  # the call resolves its called definition in the store
                definitions.deploy(session, key=d.key, name=d.key, files=d.files, digest=d.hash, deployed_by="bench")
        engine = build_worker(client, sessions)
        steps = Worker(client, task_queue=BENCH_TASK_QUEUE, activities=[bench_step], max_concurrent_activities=200)
        kinds = [Kind(key) for key in KINDS]
        async with engine, steps:
            for kind in kinds:  # warm-up: workflow code loaded, definitions parsed and cached
                await _round(client, found[kind.key], in_flight, in_flight)
            for number in range(1, rounds + 1):
                for kind in kinds:
                    result, ids = await _round(client, found[kind.key], instances, in_flight)
                    kind.rounds.append(result)
                    if number == 1:
                        kind.events = [await _events(client, i) for i in ids[:20]]
                    print(f"round {number} {kind.key}: {result.rate:.2f}/s, p50 {result.p50_ms:.0f} ms", flush=True)
    return kinds


def render(kinds: list[Kind], command: str, rounds: int, instances: int, in_flight: int) -> str:
    by_key = {k.key: k for k in kinds}
    call, embedded = by_key["bench_call"], by_key["bench_embedded"]
    rows = ["| process | instances/s | p50 latency (ms) | history events/instance |", "|---|---:|---:|---:|"]
    for kind in kinds:
        rows.append(
            f"| {KINDS[kind.key]} | {kind.rate:.2f} | {kind.p50_ms:.0f} | {statistics.median(kind.events):.0f} |"
        )
    per_round = [c.rate / e.rate for c, e in zip(call.rounds, embedded.rounds, strict=True)]
    return "\n".join(
        [
            "## Call activities: a child workflow per call",
            "",
            f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {cpu_name()} ({platform.machine()}), Python "
            f"{platform.python_version()}; Temporal dev server (SQLite, WAL), engine worker and `bench.step` worker "
            f"in this process. {rounds} rounds per kind, interleaved; {instances} instances per round, {in_flight} in "
            "flight; medians across rounds. History events: the median of 20 instances, a called instance's "
            "history counted with its caller's.",
            "",
            *rows,
            "",
            f"A call against the same task in an embedded subprocess: {call.rate / embedded.rate:.2f}x the throughput "
            f"(round by round {', '.join(f'{r:.2f}' for r in per_round)}), {call.p50_ms / embedded.p50_ms:.2f}x the "
            "median latency. What a call adds: the called definition resolved in the store (`engine.prepare_call`), "
            "the child workflow started, the child's own index row (`engine.index_called`) and audit, and its "
            "answer signalled back (`call_returned`).",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--in-flight", type=int, default=10)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="'-' prints instead")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.bench_calls " + " ".join(argv if argv is not None else sys.argv[1:])
    kinds = asyncio.run(benchmark(args.rounds, args.instances, args.in_flight))
    body = render(kinds, command.strip(), args.rounds, args.instances, args.in_flight)
    publish(body, args.output, "calls", script="benchmarks.bench_calls")


if __name__ == "__main__":
    main()
