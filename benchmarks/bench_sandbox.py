"""What untrusted model code costs and how fast its limits stop it.

- a script task's run in the sandbox child (process start included), median and p90 of 20 runs;
- how long an endless loop and a 1 GiB allocation take to be stopped;
- the in-workflow evaluator per expression, with its step budget and size guards, against plain
  `eval` of the same compiled code (the price of the guards, as a ratio on the same machine).

Run: `python -m benchmarks.bench_sandbox` (part of `make bench`); rewrites its block of BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from activities.script_sandbox import ScriptSandbox
from benchmarks.report import write_block
from bpmn.restricted import SAFE_BUILTINS
from bpmn.script_engine import RestrictedEnvironment

EXPRESSION = "amount * quantity > limit and status == 'open'"


async def _timed(sandbox: ScriptSandbox, script: str, data: dict[str, object]) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    answer = await sandbox.run(json.dumps({"script": script, "data": data}).encode())
    return (time.perf_counter() - started) * 1000, answer


async def scripts() -> list[str]:
    sandbox = ScriptSandbox()
    runs = [await _timed(sandbox, "total = price * quantity", {"price": 3, "quantity": 4}) for _ in range(20)]
    assert all(answer == {"data": {"price": 3, "quantity": 4, "total": 12}} for _, answer in runs)
    times = sorted(ms for ms, _ in runs)
    loop_ms, loop = await _timed(sandbox, "n = 0\nwhile True:\n    n = n + 1", {})
    memory_ms, memory = await _timed(sandbox, "blob = ['x' * 1048576 + str(i) for i in range(1024)]", {})
    return [
        f"| script run in the sandbox (median / p90 of 20) | {statistics.median(times):.0f} / "
        f"{times[int(len(times) * 0.9)]:.0f} ms |",
        f"| endless loop stopped ({loop.get('type')}) | {loop_ms:.0f} ms |",
        f"| 1 GiB allocation stopped ({memory.get('type')}) | {memory_ms:.0f} ms |",
        f"| isolation | `{' '.join(sandbox._prefix) or 'none (no namespace on this host)'}` |",
    ]


def expressions(count: int = 20_000) -> list[str]:
    env = RestrictedEnvironment()
    context = {"amount": 3, "quantity": 7, "limit": 20, "status": "open"}
    code = compile(EXPRESSION, "<plain>", "eval")
    started = time.perf_counter()
    for _ in range(count):
        eval(code, {"__builtins__": SAFE_BUILTINS, **context})
    plain = (time.perf_counter() - started) / count * 1e6
    started = time.perf_counter()
    for _ in range(count):
        env.evaluate(EXPRESSION, dict(context))
    guarded = (time.perf_counter() - started) / count * 1e6
    return [
        f"| expression `{EXPRESSION}`: restricted evaluator / plain eval | {guarded:.1f} / {plain:.1f} µs "
        f"(+{guarded - plain:.1f} µs) |",
    ]


def main() -> None:
    rows = asyncio.run(scripts()) + expressions()
    block = "\n".join(
        [
            "## Untrusted model code: the script sandbox and the expression evaluator",
            "",
            f"- Command: `python -m benchmarks.bench_sandbox`; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            "| measure | value |",
            "|---|---|",
            *rows,
        ]
    )
    print(block)
    write_block(Path(__file__).resolve().parent.parent / "BENCHMARKS.md", "bench_sandbox", block,
                script="benchmarks.bench_sandbox")  # fmt: skip


if __name__ == "__main__":
    main()
