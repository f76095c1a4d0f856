"""`aimatrix`: run the platform, run one worker pool, or use the REST API from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from aimatrix.settings import get_settings


def _variables(pairs: list[str], json_text: str | None) -> dict[str, Any]:
    variables: dict[str, Any] = json.loads(json_text) if json_text else {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--var expects name=value, got {pair!r}")
        try:
            variables[name] = json.loads(value)  # numbers, booleans, lists, objects
        except json.JSONDecodeError:
            variables[name] = value  # anything else is a string
    return variables


def _client() -> httpx.Client:
    settings = get_settings()
    key = os.environ.get("AIMATRIX_API_KEY") or settings.api_key
    key_file = settings.data_dir / "api_key"
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    base = os.environ.get("AIMATRIX_URL", f"http://{settings.api_host}:{settings.api_port}")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60)


def _show(response: httpx.Response) -> None:
    try:
        body: Any = response.json()
        text = json.dumps(body, indent=2)
    except ValueError:
        text = response.text
    print(text)
    if response.status_code >= 400:
        sys.exit(1)


def _worker(pool: str, site: str | None = None) -> None:
    if pool == "engine":
        from workers.engine import main as engine_main

        asyncio.run(engine_main())
    elif pool == "connector":
        from workers.connector import main as connector_main

        asyncio.run(connector_main())
    elif pool == "gpu":
        from workers.gpu.worker import main as gpu_main

        asyncio.run(gpu_main())
    elif pool == "sandbox":
        from workers.sandbox import main as sandbox_main

        asyncio.run(sandbox_main())
    elif pool == "twin":
        from workers.twin.worker import main as twin_main

        asyncio.run(twin_main())
    elif pool == "edge":
        from workers.edge.worker import main as edge_main

        asyncio.run(edge_main([] if site is None else ["--site", site]))
    else:
        sys.exit(f"unknown pool {pool!r}")


def _verify_audit() -> None:
    """Reads the database directly (DATABASE_URL / the data directory): no API or key needed."""
    from store import audit
    from store.db import make_engine, make_session_factory

    engine = make_engine(get_settings().resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            result = audit.verify(session)
    finally:
        engine.dispose()
    print(f"checked {result.checked} records, head at {result.head_seq}")
    for problem in result.problems:
        print(f"TAMPERED: {problem}")
    if not result.ok:
        sys.exit(1)
    print("audit log intact")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aimatrix", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start Temporal, every worker pool and the API; deploy the examples")
    worker = commands.add_parser("worker", help="run one worker pool")
    worker.add_argument("pool", choices=["engine", "connector", "sandbox", "gpu", "edge", "twin"])
    worker.add_argument("--site", help="edge pool: the site this worker serves (its queue is edge.<site>)")
    deploy = commands.add_parser("deploy", help="deploy .bpmn/.dmn files")
    deploy.add_argument("files", nargs="+", type=Path)
    commands.add_parser("definitions", help="list deployed definitions")
    start = commands.add_parser("start", help="start an instance")
    start.add_argument("key")
    start.add_argument("--version", type=int)
    start.add_argument("--business-key")
    start.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    start.add_argument("--vars", metavar="JSON")
    instance = commands.add_parser("instance", help="show an instance")
    instance.add_argument("id")
    tasks = commands.add_parser("tasks", help="list open tasks (mine; operators: all, --mine for theirs)")
    tasks.add_argument("--instance")
    tasks.add_argument("--mine", action="store_true", help="only the caller's tasks")
    for verb, what in (("claim", "take a user task"), ("unclaim", "give a claimed task back to its candidates")):
        commands.add_parser(verb, help=what).add_argument("task_id")
    assign = commands.add_parser("assign", help="give a user task to someone (operators); no user releases it")
    assign.add_argument("task_id")
    assign.add_argument("user", nargs="?")
    complete = commands.add_parser("complete", help="complete a user task")
    complete.add_argument("task_id")
    complete.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    complete.add_argument("--vars", metavar="JSON")
    message = commands.add_parser("message", help="publish a BPMN message to waiting instances or message starts")
    message.add_argument("name")
    message.add_argument("--key", help="the correlation key")
    message.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    message.add_argument("--vars", metavar="JSON")
    signal = commands.add_parser("signal", help="broadcast a BPMN signal to every waiting instance and signal start")
    signal.add_argument("name")
    signal.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    signal.add_argument("--vars", metavar="JSON")
    twin = commands.add_parser("twin", help="the digital twin").add_subparsers(dest="twin_command", required=True)
    simulate = twin.add_parser("simulate", help="simulate a deployed definition (what-if, Monte Carlo)")
    simulate.add_argument("key")
    simulate.add_argument("--version", type=int)
    simulate.add_argument("--horizon", default="P7D", help="simulated time per replication (ISO 8601 or seconds)")
    simulate.add_argument("--replications", type=int, default=10)
    simulate.add_argument("--seed", type=int)
    simulate.add_argument("--calibrate-from", help="fit to this much audit history (P30D) or 'all'")
    simulate.add_argument("--sla", help="SLA on cycle time (PT4H)")
    simulate.add_argument("--overrides", metavar="JSON", help='e.g. \'{"capacities": {"group:approvers": 2}}\'')
    simulate.add_argument("--plots", type=Path, help="write the SVG plots into this directory")
    audit_cmd = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_cmd.add_argument("action", choices=["verify"])
    args = parser.parse_args(argv)

    if args.command == "run":
        from aimatrix.launcher import run

        run()
        return
    if args.command == "worker":
        _worker(args.pool, args.site)
        return
    if args.command == "audit":
        _verify_audit()
        return
    with _client() as client:
        if args.command == "deploy":
            files = [("files", (p.name, p.read_bytes(), "application/xml")) for p in args.files]
            _show(client.post("/deployments", files=files))
        elif args.command == "definitions":
            _show(client.get("/definitions"))
        elif args.command == "start":
            body = {"definition_key": args.key, "variables": _variables(args.var, args.vars)}
            if args.version:
                body["version"] = args.version
            if args.business_key:
                body["business_key"] = args.business_key
            _show(client.post("/instances", json=body))
        elif args.command == "instance":
            _show(client.get(f"/instances/{args.id}"))
        elif args.command == "tasks":
            params = {"instance_id": args.instance} if args.instance else {}
            _show(client.get("/tasks", params={**params, **({"all": "false"} if args.mine else {})}))
        elif args.command in ("claim", "unclaim"):
            _show(client.post(f"/tasks/{args.task_id}/{args.command}"))
        elif args.command == "assign":
            _show(client.post(f"/tasks/{args.task_id}/assign", json={"assignee": args.user}))
        elif args.command == "message":
            published = {"name": args.name, "correlation_key": args.key, "variables": _variables(args.var, args.vars)}
            _show(client.post("/messages", json=published))
        elif args.command == "signal":
            _show(client.post("/signals", json={"name": args.name, "variables": _variables(args.var, args.vars)}))
        elif args.command == "twin":
            from aimatrix import twin_cli

            twin_cli.simulate(client, twin_cli.body_from(args), args.plots)
        elif args.command == "complete":
            _show(client.post(f"/tasks/{args.task_id}/complete", json={"variables": _variables(args.var, args.vars)}))


if __name__ == "__main__":
    main()
