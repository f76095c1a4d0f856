"""The sandbox child: runs one script task's script, in a process of its own, then exits.

activities/script_sandbox.py starts it as `python -I -S child.py` (no environment, no site-packages,
an empty working directory, no network namespace where the host allows one, an unprivileged user when
started as root) with CPU, memory, file-size and open-file limits already set. It reads
`{"script", "data"}` on stdin and writes `{"data"}` or `{"error", "type", "line"}` on stdout.

The script is checked and run under bpmn/restricted.py's rules, the same module the deploy-time
validator uses: the limits here are a second wall, not the only one.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: bpmn/ is stdlib-only

from bpmn.restricted import SCRIPT_FILENAME, UnsafeCodeError, run_script


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _line(err: BaseException) -> int | None:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == SCRIPT_FILENAME]
    return frames[-1].lineno if frames else getattr(err, "lineno", None)


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    try:
        data = run_script(request["script"], request["data"])
        answer = {"data": data}
        text = json.dumps(answer, default=_jsonable)
    except MemoryError:
        text = json.dumps({"error": "the script ran out of memory", "type": "MemoryError"})
    except RecursionError:
        text = json.dumps({"error": "the script recursed too deeply", "type": "RecursionError"})
    except (SyntaxError, UnsafeCodeError) as err:
        text = json.dumps({"error": str(err), "type": type(err).__name__, "line": _line(err)})
    except Exception as err:
        text = json.dumps(
            {"error": f"{type(err).__name__}: {err}"[:2000], "type": type(err).__name__, "line": _line(err)}
        )
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
