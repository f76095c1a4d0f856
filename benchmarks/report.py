"""What the benchmarks write: the machine they ran on, and their own block of a results file.

Each script owns one block of BENCHMARKS.md (or RELIABILITY.md), between markers naming it; it
rewrites only that block, so notes written by hand outside the markers stay.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_block(path: Path, name: str, body: str, *, script: str, title: str = "# Benchmarks") -> None:
    """Put `body` between the markers of block `name` in `path` (appended if they are not there yet).

    `script` is the module that writes it (`benchmarks.bench_edge`), named in the begin marker.
    """
    begin_marker = f"<!-- {name}:begin (python -m {script} rewrites this block) -->"
    end_marker = f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else f"{title}\n"
    block = f"{begin_marker}\n\n{body.strip()}\n\n{end_marker}"
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin != -1 and end > begin:
        text = text[:begin] + block + text[end + len(end_marker) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def publish(body: str, output: str, name: str, *, script: str) -> None:
    """Print `body` (`output` is '-'), or write it as block `name` of the results file `output`."""
    if output == "-":
        print(body)
        return
    write_block(Path(output), name, body, script=script)
    print(f"written to {output}")
