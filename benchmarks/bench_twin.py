"""Digital twin speed: the salabim engine against a hand-written event loop, and a year of a busy process.

Run: `python -m benchmarks.bench_twin` (rewrites its block of BENCHMARKS.md). In one run it measures

  (a) an M/M/3 queue at rho = 0.8 built from BPMN (start → a user task of group `clerks` with 3
      approvers → end) and run by `workers.twin.simulation.simulate`, against
  (b) the same M/M/3 queue as a minimal heapq event loop (arrival and departure events, a deque of
      waiting customers, `random.Random` draws),

as simulated events per CPU second of this process, an event being an arrival or the end of a service in both (a
salabim engine also schedules wake-ups of its own, which are not counted). Rounds alternate
a b a b … so that load from other jobs on the machine hits both alike; the ratio is the median of
the per-round ratios. Target: (a)/(b) ≥ 0.25.

  (c) one simulated year of `examples/order_approval.bpmn` at 1,000 instances a day: Poisson
      arrivals, a script task, a gateway sending 30 % to a user task with 6 approvers (lognormal
      work, mean 20 min), a call on the `http` pool with 8 workers, as the wall time of one
      replication. Target: ≤ 30 s.
"""

from __future__ import annotations

import argparse
import heapq
import platform
import random
import statistics
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import cpu_name, write_block
from workers.twin.distributions import Distribution
from workers.twin.model import ProcessModel, build_model, model_from_file
from workers.twin.params import SimulationParams
from workers.twin.simulation import simulate

ROOT = Path(__file__).resolve().parent.parent

ARRIVAL_RATE = 2.4  # per second: rho = λ / (c μ) = 0.8
SERVICE_MEAN = 1.0
SERVERS = 3

# start → one user task (3 clerks) → end: the model the twin tests check against Erlang-C
MMC_BPMN = (ROOT / "tests" / "data" / "twin_one_task.bpmn").read_text(encoding="utf-8")


def mmc_model() -> ProcessModel:
    return build_model({"twin_one_task.bpmn": MMC_BPMN}, "one_task")


def mmc_params() -> SimulationParams:
    return SimulationParams(
        arrival_rate_per_s=ARRIVAL_RATE,
        durations={"work": Distribution.exponential(SERVICE_MEAN)},
        capacities={"group:clerks": SERVERS},
    )


def heapq_mmc(horizon_s: float, seed: int) -> tuple[int, float]:
    """The M/M/c queue as a minimal event loop: (events, mean wait in the queue)."""
    rng = random.Random(seed)
    events: list[tuple[float, int, int]] = [(rng.expovariate(ARRIVAL_RATE), 0, 0)]  # time, order, kind
    waiting: deque[float] = deque()
    busy = order = count = served = 0
    wait_total = 0.0
    while events:
        now, _, kind = heapq.heappop(events)
        count += 1
        if kind == 0:  # an arrival
            following = now + rng.expovariate(ARRIVAL_RATE)
            if following < horizon_s:
                order += 1
                heapq.heappush(events, (following, order, 0))
            if busy < SERVERS:
                busy += 1
                served += 1
                order += 1
                heapq.heappush(events, (now + rng.expovariate(1 / SERVICE_MEAN), order, 1))
            else:
                waiting.append(now)
        elif waiting:  # a departure, and the next in line starts
            wait_total += now - waiting.popleft()
            served += 1
            order += 1
            heapq.heappush(events, (now + rng.expovariate(1 / SERVICE_MEAN), order, 1))
        else:
            busy -= 1
    return count, wait_total / served


def salabim_mmc(model: ProcessModel, horizon_s: float, seed: int) -> tuple[int, float, float]:
    """(events, mean wait in the queue, CPU seconds) of the twin's engine on the same queue."""
    started = time.process_time()
    result = simulate(model, mmc_params(), replications=1, horizon_s=horizon_s, seed=seed)
    cpu = time.process_time() - started
    wait = result.elements["work"]["mean_wait_s"]
    return result.events, float(getattr(wait, "mean", 0.0)), cpu


def erlang_c_wait() -> float:
    a = ARRIVAL_RATE * SERVICE_MEAN
    below = sum(a**k / _factorial(k) for k in range(SERVERS))
    top = a**SERVERS / _factorial(SERVERS) * SERVERS / (SERVERS - a)
    return top / (below + top) / (SERVERS / SERVICE_MEAN - ARRIVAL_RATE)


def _factorial(n: int) -> int:
    return 1 if n < 2 else n * _factorial(n - 1)


def year_of_order_approval(seed: int) -> tuple[float, int, int, float]:
    """(wall seconds, instances, events, mean cycle time in seconds) of one simulated year."""
    model = model_from_file(ROOT / "examples" / "order_approval.bpmn")
    params = SimulationParams(
        arrival_rate_per_s=1000 / 86400,
        durations={
            "compute_total": Distribution.fixed(0.05),
            "approve": Distribution.lognormal(1200, 900),
            "notify": Distribution.lognormal(0.4, 0.3),
        },
        capacities={"group:approvers": 6, "pool:http": 8},
        branches={"needs_approval": {"approve": 0.3}},
    )
    started = time.perf_counter()
    result = simulate(model, params, replications=1, horizon_s=365 * 86400, seed=seed)
    wall = time.perf_counter() - started
    return wall, result.instances, result.events, result.cycle_time["mean"].mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--horizon", type=float, default=100_000.0, help="simulated seconds per M/M/3 round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    model = mmc_model()
    salabim_mmc(model, 2_000, 0)  # warm-up: imports, first-call costs
    heapq_mmc(2_000, 0)
    rows: list[tuple[int, float, float, float, float, float]] = []
    for round_number in range(1, args.rounds + 1):
        # CPU time, not wall time: on a machine shared with other jobs, time spent descheduled would
        # count against whichever side happened to be running
        started = time.process_time()
        heap_events, heap_wait = heapq_mmc(args.horizon, round_number)
        heap_rate = heap_events / (time.process_time() - started)
        twin_events, twin_wait, twin_cpu = salabim_mmc(model, args.horizon, round_number)
        twin_rate = twin_events / twin_cpu
        rows.append((round_number, twin_rate, heap_rate, twin_rate / heap_rate, twin_wait, heap_wait))
        print(f"round {round_number}: twin {twin_rate:,.0f} ev/s, heapq {heap_rate:,.0f} ev/s, "
              f"ratio {twin_rate / heap_rate:.3f}")  # fmt: skip
    ratio = statistics.median(r[3] for r in rows)
    year_wall, year_instances, year_events, year_cycle = year_of_order_approval(1)
    print(f"year of order_approval at 1,000/day: {year_wall:.1f} s wall, {year_instances:,} instances")

    theory = erlang_c_wait()
    block = "\n".join(
        [
            "## Digital twin: salabim engine vs a hand-written event loop; a simulated year",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: `python -m benchmarks.bench_twin` "
            f"({args.rounds} rounds of {args.horizon:,.0f} simulated s each, alternating)",
            f"- Machine: {cpu_name()}, Python {platform.python_version()}; shared with other jobs: compare the ratio",
            f"- Model: M/M/{SERVERS}, λ = {ARRIVAL_RATE}/s, μ = {1 / SERVICE_MEAN}/s (rho = 0.8), built from BPMN "
            "(start → user task → end) and run by `workers.twin.simulation.simulate` (few long-lived salabim "
            "components, instances as plain objects), vs a heapq loop; events = arrivals + service ends",
            "",
            "| round | twin (salabim) events/CPU s | heapq loop events/CPU s | ratio | twin mean wait (s) "
            "| heapq mean wait (s) |",
            "|---:|---:|---:|---:|---:|---:|",
            *(f"| {n} | {t:,.0f} | {h:,.0f} | {r:.3f} | {tw:.4f} | {hw:.4f} |" for n, t, h, r, tw, hw in rows),
            "",
            f"**Ratio (median of rounds): {ratio:.3f}** (target ≥ 0.25: {'met' if ratio >= 0.25 else 'NOT met'}). "
            f"Erlang-C mean wait: {theory:.4f} s.",
            "",
            f"**One simulated year of `examples/order_approval.bpmn` at 1,000 instances/day: {year_wall:.1f} s wall** "
            f"(target ≤ 30 s: {'met' if year_wall <= 30 else 'NOT met'}); {year_instances:,} instances, "
            f"{year_events:,} events, mean cycle time {year_cycle / 60:.1f} min.",
        ]
    )
    print(block)
    if not args.no_write:
        write_block(ROOT / "BENCHMARKS.md", "bench_twin", block, script="benchmarks.bench_twin")


if __name__ == "__main__":
    main()
