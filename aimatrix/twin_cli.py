"""`aimatrix twin simulate KEY ...`: run a simulation through the API, print its table, write its plots."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def simulate(client: httpx.Client, body: dict[str, Any], plots: Path | None, poll_s: float = 0.5) -> None:
    started = client.post("/twin/simulations", json=body)
    if started.status_code >= 400:
        sys.exit(f"{started.status_code}: {started.text}")
    simulation_id = started.json()["id"]
    print(f"simulation {simulation_id}", file=sys.stderr)
    while True:
        view = client.get(f"/twin/simulations/{simulation_id}").json()
        if view["status"] != "running":
            break
        if view.get("progress") is not None:
            print(f"\r  {view.get('phase') or ''} {view['progress']:.0%}   ", end="", file=sys.stderr)
        time.sleep(poll_s)
    print(file=sys.stderr)
    if view["status"] != "completed":
        sys.exit(f"simulation {view['status']}: {view.get('error')}")
    print(table(view["result"]))
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        for name in ("cycle-time", "utilisation"):
            svg = client.get(f"/twin/simulations/{simulation_id}/plots/{name}.svg")
            (plots / f"{simulation_id}-{name}.svg").write_text(svg.text, encoding="utf-8")
        print(f"plots written to {plots}", file=sys.stderr)


def table(result: dict[str, Any]) -> str:
    simulated = result["simulation"]

    def estimate(value: dict[str, Any], scale: float = 1.0, unit: str = "") -> str:
        low, high = value.get("ci95") or [value["mean"], value["mean"]]
        return f"{value['mean'] / scale:,.2f}{unit} (95% CI {low / scale:,.2f} to {high / scale:,.2f})"

    cycle = simulated["cycle_time_s"]
    lines = [
        f"{result['definition_key']} v{result['version']}: {simulated['replications']} replications of "
        f"{simulated['horizon_s'] / 86400:g} days, {simulated['instances']:,} instances",
        *(f"  cycle time {name:4} {estimate(cycle[name], 60, ' min')}" for name in ("mean", "p50", "p90", "p99")),
        f"  throughput      {estimate(simulated['throughput_per_hour'], 1, '/h')}",
    ]
    if simulated.get("sla"):
        lines.append(f"  SLA breach      {estimate(simulated['sla']['breach_probability'])}")
    if simulated.get("bottleneck"):
        lines.append(f"  bottleneck      {simulated['bottleneck'].get('element')}")
    lines.append("  resource                       capacity  utilisation    mean queue")
    for name, resource in simulated["resources"].items():
        capacity = resource["capacity"] if resource["capacity"] is not None else "unlimited"
        utilisation = (resource.get("utilisation") or {}).get("mean")  # none for an unlimited pool
        queue = (resource.get("mean_queue_length") or {}).get("mean")
        shown = f"{utilisation:>10.1%}" if utilisation is not None else f"{'-':>10}"
        lines.append(f"  {name:30}{capacity!s:>9}  {shown}  {f'{queue:.2f}' if queue is not None else '-':>12}")
    return "\n".join(lines)


def body_from(args: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"definition_key": args.key, "replications": args.replications, "horizon": args.horizon}
    for name in ("version", "seed", "calibrate_from", "sla"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.overrides:
        body["overrides"] = json.loads(args.overrides)
    return body
