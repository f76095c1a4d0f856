"""`sandbox.script`: run a script task's script in a resource-limited child process.

Each run is a fresh `python -I -S workers/sandbox/child.py`: nothing a script does (it can do very
little: bpmn/restricted.py refuses imports, dunders and unsafe builtins) survives it or reaches
another instance. Limits: CPU seconds and address space (RLIMIT_CPU, RLIMIT_AS), no file writes
(RLIMIT_FSIZE 0), few open files, an empty environment and working directory, a wall-clock timeout
after which the process group is killed, and, where the host allows it, a network namespace of its
own and an unprivileged user. A script that fails or breaks a limit raises a non-retryable
ApplicationError: the engine turns it into an incident; the worker carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.contracts import SCRIPT_ACTIVITY, SCRIPT_FAILED, ServiceTaskInput

log = logging.getLogger("aimatrix.sandbox")

CHILD = Path(__file__).resolve().parents[1] / "workers" / "sandbox" / "child.py"
_NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 5.0
    cpu_seconds: int = 4
    memory_bytes: int = 256 * 1024 * 1024
    max_output_bytes: int = 8 * 1024 * 1024
    open_files: int = 32


@functools.cache
def isolation_prefix(python: str = sys.executable) -> tuple[str, ...]:
    """The `unshare` invocation this host allows (a network namespace, an unprivileged user), or ().

    Probed once per process: every sandbox (tests build several) shares the answer."""
    candidates = (
        # as root: drop to nobody too, unless the interpreter lives where nobody cannot read (~root/.pyenv)
        [["unshare", "--net", "--setuid", str(_NOBODY), "--setgid", str(_NOBODY), "--"], ["unshare", "--net", "--"]]
        if os.geteuid() == 0
        else [["unshare", "--user", "--map-root-user", "--net", "--"]]
    )
    for prefix in candidates:
        try:
            probe = subprocess.run([*prefix, python, "-I", "-S", "-c", "pass"], capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return tuple(prefix)
    log.warning("no network namespace for script sandboxes: scripts still cannot import or open anything")
    return ()


class ScriptSandbox:
    def __init__(
        self, limits: Limits | None = None, *, prefix: tuple[str, ...] | None = None, parallel: int = 0
    ) -> None:
        self.limits = limits or Limits()
        self._prefix = isolation_prefix() if prefix is None else prefix
        self._gate = asyncio.Semaphore(parallel or 2 * (os.cpu_count() or 1))

    @activity.defn(name=SCRIPT_ACTIVITY)
    async def script(self, inp: ServiceTaskInput) -> dict[str, Any]:
        request = json.dumps({"script": inp.params.get("script", ""), "data": inp.params.get("data", {})}).encode()
        async with self._gate:
            answer = await self.run(request)
        if "error" in answer:
            line = answer.get("line")
            where = f" (line {line} of the script)" if line else ""
            raise ApplicationError(
                f"script task '{inp.element_id}'{where}: {answer['error']}",
                answer.get("type"),
                type=SCRIPT_FAILED,
                non_retryable=True,
            )
        return {"data": answer["data"]}

    async def run(self, request: bytes) -> dict[str, Any]:
        """Run the child on `request`; its answer, or {"error"} when it broke a limit."""
        limits = self.limits
        with tempfile.TemporaryDirectory(prefix="amx-script-") as workdir:
            os.chmod(workdir, 0o755)  # readable as the unprivileged user; RLIMIT_FSIZE stops writes
            process = await asyncio.create_subprocess_exec(
                *self._prefix, sys.executable, "-I", "-S", str(CHILD),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                cwd=workdir, env={}, start_new_session=True, preexec_fn=self._limit,
            )  # fmt: skip
            try:
                stdout, stderr = await asyncio.wait_for(process.communicate(request), limits.wall_seconds)
            except TimeoutError:
                _kill(process)
                await process.wait()
                return {
                    "error": f"the script ran longer than {limits.wall_seconds:g} s and was stopped",
                    "type": "Timeout",
                }
            except asyncio.CancelledError:
                _kill(process)  # the task was cancelled (e.g. by a boundary timer): stop the work too
                raise
        if process.returncode == -signal.SIGXCPU or process.returncode == -signal.SIGKILL:
            return {
                "error": f"the script used more than {limits.cpu_seconds} s of CPU and was stopped",
                "type": "CpuLimit",
            }
        if len(stdout) > limits.max_output_bytes:
            return _error("the script left more data than the sandbox returns", "OutputLimit")
        try:
            answer: dict[str, Any] = json.loads(stdout)
        except ValueError:
            detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {
                "error": f"the script process ended abnormally ({process.returncode}): {detail[0][:500]}",
                "type": "Crash",
            }
        return answer

    def _limit(self) -> None:
        """Runs in the child between fork and exec: the limits hold for everything it starts."""
        limits = self.limits
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": message, "type": kind}


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
