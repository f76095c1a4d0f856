"""Cost per step as an instance grows: the engine's passes against plain SpiffWorkflow.

Run: `python -m benchmarks.bench_long_loops` (rewrites its block of BENCHMARKS.md). The model is
tests/data/counting_loop.bpmn (a script task `i = i + 1` and an exclusive gateway per iteration), run
in memory with the engine's own code (`bpmn.runtime.run_engine`: the restricted evaluator runs the
script inline, the task tree is cut as on the platform) to 10, 1,000, 10,000 and 100,000 iterations;
a step is a task Spiff completes. For comparison, plain `do_engine_steps` (no cuts) on the same model
up to 400 iterations (past ~500 it loses the instance: its iterator stops at depth 1,000). Each size
repeats until it has run ≥ 1 s; sizes alternate in rounds and the median of the rounds is reported.
Target: steps/s at 100,000 iterations ≥ 0.8 x steps/s at 10 iterations.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import cpu_name, write_block
from bpmn import runtime
from bpmn.definitions import content_hash, load_process
from bpmn.parser import ProcessSpec

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "data" / "counting_loop.bpmn"


def _process() -> ProcessSpec:
    files = {MODEL.name: MODEL.read_text()}
    return load_process(files, "counting_loop", content_hash(files))


def _engine(process: ProcessSpec, n: int) -> int:
    workflow = runtime.new_workflow(process, {"i": 0, "n": n})
    runtime.run_engine(workflow)
    assert workflow.completed and runtime.variables(workflow)["i"] == n
    return 2 * n + 2  # start, n x (script, gateway), end


def _plain(process: ProcessSpec, n: int) -> int:
    workflow = runtime.new_workflow(process, {"i": 0, "n": n})
    workflow.do_engine_steps()
    assert workflow.completed and runtime.variables(workflow)["i"] == n
    return 2 * n + 2


def _rate(run: Callable[[ProcessSpec, int], int], process: ProcessSpec, n: int) -> float:
    """Steps per second of CPU time, over repeats lasting ≥ 1 s."""
    steps, spent = 0, 0.0
    while spent < 1.0:
        began = time.process_time()
        steps += run(process, n)
        spent += time.process_time() - began
    return steps / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    process = _process()
    cases: list[tuple[str, Callable[[ProcessSpec, int], int], int]] = [
        ("engine", _engine, 10), ("engine", _engine, 1_000), ("engine", _engine, 10_000),
        ("engine", _engine, 100_000), ("plain SpiffWorkflow", _plain, 10), ("plain SpiffWorkflow", _plain, 100),
        ("plain SpiffWorkflow", _plain, 400),
    ]  # fmt: skip
    rates: dict[tuple[str, int], list[float]] = {(label, n): [] for label, _, n in cases}
    _rate(_engine, process, 10)  # warm-up: imports, caches and the evaluator's compiled code
    for round_no in range(args.rounds):
        for label, run, n in cases:
            rates[(label, n)].append(_rate(run, process, n))
            print(f"round {round_no + 1}: {label} at {n:,} iterations: {rates[(label, n)][-1]:,.0f} steps/s")
    median = {key: statistics.median(values) for key, values in rates.items()}
    base = median[("engine", 10)]
    plain_base = median[("plain SpiffWorkflow", 10)]
    rows = [
        f"| {label} | {n:,} | {median[(label, n)]:,.0f} | "
        f"{median[(label, n)] / (base if label == 'engine' else plain_base):.2f} |"
        for label, _, n in cases
    ]
    ratio = median[("engine", 100_000)] / base
    body = "\n".join([
        "## Cost per step as an instance grows (`python -m benchmarks.bench_long_loops`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d}, {cpu_name()}, Python {platform.python_version()}; CPU time, median of "
        f"{args.rounds} rounds. A counting loop (script task + gateway per iteration) run in memory by the "
        "engine's own pass (`bpmn.runtime.run_engine`, task tree cut above the live token) and by plain "
        "`do_engine_steps`.",
        "",
        "| run | iterations | steps/s | x its 10-iteration rate |",
        "|---|---|---|---|",
        *rows,
        "",
        f"**Target: steps/s at 100,000 iterations ≥ 0.8 x at 10 iterations: {ratio:.2f} "
        f"({'met' if ratio >= 0.8 else 'missed'}).** Plain SpiffWorkflow cannot run past ~500 iterations "
        "(its iterator stops at depth 1,000: the instance reports completed with its data lost).",
    ])  # fmt: skip
    print(body)
    if not args.no_write:
        write_block(ROOT / "BENCHMARKS.md", "bench_long_loops", body, script="benchmarks.bench_long_loops")


if __name__ == "__main__":
    main()
