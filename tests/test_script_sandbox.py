"""Script tasks run in the sandbox pool's child processes: limits hold, failures are incidents, and
nothing one script does reaches the worker or another instance."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from activities.script_sandbox import ScriptSandbox, isolation_prefix
from tests.helpers import deploy_text, start, wait_for

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="script" name="Script"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="script" />
    <bpmn:sequenceFlow id="f2" sourceRef="script" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""


async def _deploy(api: httpx.AsyncClient, script: str) -> str:
    key = f"sandboxed_{uuid.uuid4().hex[:8]}"
    answer = await deploy_text(api, f"{key}.bpmn", PROCESS.format(key=key, script=script))
    assert answer.status_code == 201, answer.text
    return key


async def _incident(api: httpx.AsyncClient, instance: str, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = (await api.get("/incidents", params={"instance_id": instance})).json()
        if found:
            return dict(found[0])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no incident for {instance}")


async def test_a_script_runs_in_the_sandbox_and_sets_variables(api: httpx.AsyncClient) -> None:
    key = await _deploy(api, "total = price * quantity\nlabel = 'big' if total &gt; 100 else 'small'")
    instance = await start(api, key, {"price": 30, "quantity": 4})
    done = await wait_for(api, instance, "completed")
    assert done["variables"] == {"price": 30, "quantity": 4, "total": 120, "label": "big"}
    for _ in range(100):  # a completed instance's last entries reach the log with the status projector
        history = (await api.get(f"/instances/{instance}/history")).json()
        if ("script", "element.completed") in [(e["element_id"], e["action"]) for e in history]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"no completion of the script in {history}")


async def test_an_endless_loop_becomes_an_incident_and_others_carry_on(api: httpx.AsyncClient) -> None:
    endless = await _deploy(api, "n = 0\nwhile True:\n    n = n + 1")
    quick = await _deploy(api, "y = x * 2")
    began = time.monotonic()
    stuck = await start(api, endless)
    others = [await start(api, quick, {"x": i}) for i in range(3)]
    for i, other in enumerate(others):  # they finish while the loop is still burning its CPU seconds
        assert (await wait_for(api, other, "completed"))["variables"]["y"] == 2 * i
    incident = await _incident(api, stuck)
    assert time.monotonic() - began < 10
    assert incident["element_id"] == "script"
    assert "CPU" in str(incident["message"]) or "longer than" in str(incident["message"])
    assert (await wait_for(api, stuck, "running"))["status"] == "running"  # an incident, not a failure
    assert (await api.post(f"/instances/{stuck}/cancel")).status_code == 200
    # the worker is unharmed
    assert (await wait_for(api, await start(api, quick, {"x": 5}), "completed"))["variables"]["y"] == 10


async def test_a_huge_allocation_is_stopped_and_a_fixed_retry_completes(api: httpx.AsyncClient) -> None:
    # 1 MiB strings, each within the size guards: only the memory limit stops 1 GiB of them
    key = await _deploy(api, "blob = ['x' * 1048576 + str(i) for i in range(size)]\nsize_seen = len(blob)\ndel blob")
    instance = await start(api, key, {"size": 1024})
    incident = await _incident(api, instance)
    assert "out of memory" in str(incident["message"]), incident
    retried = await api.post(f"/incidents/{incident['id']}/retry", json={"variables": {"size": 10}})
    assert retried.status_code == 200, retried.text
    done = await wait_for(api, instance, "completed")
    assert done["variables"]["size_seen"] == 10


async def test_a_script_error_is_an_incident_naming_the_line(api: httpx.AsyncClient) -> None:
    key = await _deploy(api, "a = 1\nb = missing + a")
    instance = await start(api, key)
    incident = await _incident(api, instance)
    assert "line 2 of the script" in str(incident["message"]) and "missing" in str(incident["message"])


async def test_one_instance_cannot_change_what_another_sees(api: httpx.AsyncClient) -> None:
    meddler = await _deploy(api, "sqrt = 7\nlen = 0\nshared = [1]\nshared.append(2)")
    reader = await _deploy(api, "root = sqrt(16)\nsize = len([1, 2, 3])")
    await wait_for(api, await start(api, meddler), "completed")
    done = await wait_for(api, await start(api, reader), "completed")
    assert done["variables"] == {"root": 4.0, "size": 3}


def test_the_child_has_no_network_no_environment_and_no_file_writes(tmp_path: Path) -> None:
    prefix = isolation_prefix()
    assert prefix, "this host allows a network namespace for script sandboxes"
    probe = (
        "import os, socket\n"
        "print(sorted(os.environ))\n"
        "try:\n    socket.create_connection(('127.0.0.1', 5432), 1); print('connected')\n"
        "except OSError as err: print('refused', type(err).__name__)\n"
        "try:\n    f = open('written', 'w'); f.write('x' * 10); f.close(); print('wrote')\n"
        "except OSError as err: print('no write', type(err).__name__)\n"
    )
    sandbox = ScriptSandbox()
    # the same prefix and limits the sandbox uses, with a probe program instead of the child
    result = subprocess.run(
        [*prefix, sys.executable, "-I", "-S", "-c", probe],
        capture_output=True, env={}, preexec_fn=sandbox._limit, cwd=tmp_path, timeout=30, check=False,
    )  # fmt: skip
    lines = result.stdout.decode().split("\n")
    assert lines[0] in ("[]", "['LC_CTYPE']"), result  # nothing of the worker's (Python may set LC_CTYPE)
    assert lines[1].startswith("refused"), result  # PostgreSQL listens there, but not in this namespace
    assert lines[2] == "no write OSError", result  # RLIMIT_FSIZE 0: File too large
    assert (tmp_path / "written").stat().st_size == 0


async def test_limits_apply_to_each_run() -> None:
    sandbox = ScriptSandbox()
    started = time.monotonic()
    answers = await asyncio.gather(
        sandbox.run(json.dumps({"script": "while True:\n    pass", "data": {}}).encode()),
        sandbox.run(json.dumps({"script": "z = [[0] * 10 ** 6 for i in range(1000)]", "data": {}}).encode()),
        sandbox.run(json.dumps({"script": "def f(n):\n    return f(n + 1)\nf(0)", "data": {}}).encode()),
        sandbox.run(json.dumps({"script": "y = x + 1", "data": {"x": 41}}).encode()),
    )
    assert time.monotonic() - started < 8
    assert [a.get("type") for a in answers[:3]] == ["CpuLimit", "MemoryError", "RecursionError"]
    assert answers[3] == {"data": {"x": 41, "y": 42}}
