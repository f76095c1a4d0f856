"""The escape suite: hostile model code against every place a model carries code. 0 may succeed.

Surfaces: gateway conditions, timer expressions, multi-instance cardinality, service-task parameters
and output mappings, message correlation keys, pre-scripts (all evaluated inside the engine worker
by the restricted evaluator), DMN cells, and script tasks (run by the sandbox pool's child process).

Each payload is deployed (validate_upload, as POST /deployments does) and, if deploy lets it through,
run: in the engine for in-process surfaces, in the sandbox for scripts. An escape would be a canary
file written, a secret or a system file read into the process data, a module of the worker changed,
or the evaluation not stopping. After each payload the suite checks all four.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import pytest

from activities.script_sandbox import ScriptSandbox
from bpmn import messages, restricted, runtime
from bpmn.definitions import ModelValidationError, load_process, validate_upload
from tests.helpers import deploy_text, start, wait_for

SECRET = "amx-secret-" + os.urandom(6).hex()
os.environ["AIMATRIX_ESCAPE_SECRET"] = SECRET  # in the worker's environment: no payload may read it

PAYLOADS = [
    # imports and builtins
    "__import__('os').system('touch {canary}')",
    "__import__('os').environ['AIMATRIX_ESCAPE_SECRET']",
    "__builtins__['open']('{canary}', 'w')",
    "__builtins__.__dict__['__import__']('os')",
    "globals()['__builtins__']",
    "locals()",
    "vars()",
    "dir()",
    "getattr(len, '__self__')",
    "eval('1 + 1')",
    "exec('import os')",
    "compile('1', 'x', 'eval')",
    "open('/etc/passwd').read()",
    "open('{canary}', 'w').write('x')",
    "type(1)",
    "breakpoint()",
    "help()",
    "input()",
    "memoryview(b'x')",
    "\uff3f\uff3fimport\uff3f\uff3f('os')",  # fullwidth underscores: NFKC makes them '_'
    # class-hierarchy walks
    "().__class__.__base__.__subclasses__()",
    "[].__class__.__mro__[1].__subclasses__()",
    "''.__class__.__mro__",
    "(1).__class__.__bases__[0].__subclasses__()",
    "object.__subclasses__()",
    "int.mro()",
    "().\uff3f\uff3fclass\uff3f\uff3f",
    "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]()",
    "sqrt.__self__",
    "len.__self__.open",
    "print.__globals__",
    "sqrt.__module__",
    # frames and code objects
    "(lambda: 0).__code__",
    "(lambda: 0).__globals__",
    "(x for x in [1]).gi_frame.f_back.f_globals",
    "(x for x in [1]).gi_code",
    "[e for e in [ZeroDivisionError()]][0].with_traceback(None).__traceback__",
    # format strings
    "'{0.__class__}'.format(1)",
    "'{x.__class__.__mro__}'.format_map({'x': 1})",
    "'{.__globals__}'.format(sqrt)",
    "f'{().__class__}'",
    "f'{1:{2}}'",
    # resource exhaustion
    "9 ** 9 ** 9",
    "'x' * 10 ** 10",
    "[0] * 10 ** 10",
    "1 << 10 ** 10",
    "len(range(10 ** 12))",
    "sum(i for i in range(10 ** 12))",
    "'a'.ljust(10 ** 10)",
    "bytes(10 ** 10)",
    "('a' * 10 ** 6).replace('a', 'a' * 10 ** 4)",
    "'%0999999999d' % 1",
    "f'{1:999999999}'",
    "[[1] * 10 ** 6 for i in range(10 ** 6)]",
    "(lambda f: f(f))(lambda f: f(f))",
    "(" * 5000 + "1" + ")" * 5000,
    # processes, monkeypatching, other instances
    "__import__('os').fork()",
    "os.fork()",
    "sqrt.x = 1",
    "json.dumps",
    "random.seed(1)",
    "SAFE_FUNCTIONS",
    "setattr(sqrt, 'x', 1)",
]
SCRIPT_ONLY = [
    "while True:\n    pass",
    "def f(n):\n    return f(n + 1)\nf(0)",
    "x = []\nwhile True:\n    x.append('y' * 1000000)",
    "sqrt = lambda v: 42\nlen = None",
    "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__.tb_frame.f_globals",
    "import os\nos.system('touch {canary}')",
    "class A:\n    pass",
    "global sqrt\nsqrt = 1",
    "async def f():\n    pass",
    "def g():\n    yield 1\nframe = g().gi_frame",
]

_NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)


def _process(body: str, messages_xml: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions {_NS} id="d" targetNamespace="t">{messages_xml}'
        '<bpmn:process id="escape" isExecutable="true">'
        '<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
        f"{body}"
        '<bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e" />'
        "</bpmn:process></bpmn:definitions>"
    )


def _flows(inner: str) -> str:
    return f"<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>{inner}"


def model(surface: str, code: str) -> dict[str, bytes]:
    text, attr = escape(code), quoteattr("=" + code)
    if surface == "condition":
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions {_NS} id="d" targetNamespace="t">'
            '<bpmn:process id="escape" isExecutable="true">'
            '<bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
            '<bpmn:exclusiveGateway id="x" default="f3"><bpmn:incoming>f1</bpmn:incoming>'
            "<bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:exclusiveGateway>"
            '<bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
            '<bpmn:endEvent id="e2"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>'
            '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />'
            f'<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"><bpmn:conditionExpression>{text}'
            "</bpmn:conditionExpression></bpmn:sequenceFlow>"
            '<bpmn:sequenceFlow id="f3" sourceRef="x" targetRef="e2" />'
            "</bpmn:process></bpmn:definitions>"
        )
    elif surface == "timer":
        xml = _process(
            f'<bpmn:intermediateCatchEvent id="x">{_flows("")}<bpmn:timerEventDefinition>'
            f"<bpmn:timeDuration>{text}</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
        )
    elif surface == "multi-instance":
        xml = _process(
            f'<bpmn:task id="x">{_flows("")}<bpmn:multiInstanceLoopCharacteristics>'
            f"<bpmn:loopCardinality>{text}</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:task>"
        )
    elif surface in ("parameter", "output"):
        mapping = (
            f'<zeebe:input source={attr} target="url" />'
            if surface == "parameter"
            else f'<zeebe:output source={attr} target="y" />'
        )
        xml = _process(
            f'<bpmn:serviceTask id="x"><bpmn:extensionElements><zeebe:taskDefinition type="http.request" />'
            f"<zeebe:ioMapping>{mapping}</zeebe:ioMapping></bpmn:extensionElements>{_flows('')}</bpmn:serviceTask>"
        )
    elif surface == "correlation":
        xml = _process(
            f'<bpmn:intermediateCatchEvent id="x">{_flows("")}<bpmn:messageEventDefinition messageRef="m" />'
            "</bpmn:intermediateCatchEvent>",
            f'<bpmn:message id="m" name="ping"><bpmn:extensionElements><zeebe:subscription correlationKey={attr} />'
            "</bpmn:extensionElements></bpmn:message>",
        )
    elif surface == "prescript":
        xml = _process(
            f'<bpmn:manualTask id="x"><bpmn:extensionElements><spiffworkflow:preScript>{text}'
            f"</spiffworkflow:preScript></bpmn:extensionElements>{_flows('')}</bpmn:manualTask>"
        )
    elif surface == "script":
        xml = _process(f'<bpmn:scriptTask id="x">{_flows("")}<bpmn:script>{text}</bpmn:script></bpmn:scriptTask>')
    elif surface == "dmn":
        xml = _process(
            '<bpmn:businessRuleTask id="x"><bpmn:extensionElements><spiffworkflow:calledDecisionId>decide'
            f"</spiffworkflow:calledDecisionId></bpmn:extensionElements>{_flows('')}</bpmn:businessRuleTask>"
        )
        dmn = (
            '<?xml version="1.0" encoding="UTF-8"?><definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" '
            'id="dd" name="D" namespace="t"><decision id="decide" name="decide"><decisionTable id="t1">'
            '<input id="i1" label="in"><inputExpression id="ie1" typeRef="string"><text>' + text + "</text>"
            '</inputExpression></input><output id="o1" label="out" name="out" typeRef="string" />'
            '<rule id="r1"><inputEntry id="e1"><text>'
            + text
            + '</text></inputEntry><outputEntry id="oe1"><text>'
            + text
            + "</text></outputEntry></rule></decisionTable></decision></definitions>"
        )
        return {"escape.bpmn": xml.encode(), "decide.dmn": dmn.encode()}
    else:
        raise AssertionError(surface)
    return {"escape.bpmn": xml.encode()}


SURFACES = ["condition", "timer", "multi-instance", "parameter", "output", "correlation", "prescript", "dmn", "script"]


def _run_in_engine(surface: str, files: dict[str, bytes]) -> None:
    """Run what deploy accepted the way the engine does; any exception is the payload being stopped."""
    [definition] = validate_upload(files)
    process = load_process(definition.files, definition.key, definition.hash)
    workflow = runtime.new_workflow(process, {"order": 1}, inline_scripts=True)
    runtime.run_engine(workflow)
    for task in runtime.started_external_tasks(workflow):
        if surface == "parameter":
            runtime.evaluate_params(task)
        if surface == "output":
            runtime.complete_service_task(task, {"status": 200})
    for wait in messages.waiting(workflow):
        messages.correlation_value(wait)
    runtime.variables(workflow)


def _worker_state() -> dict[str, Any]:
    return {
        "os.system": id(os.system),
        "json.dumps": id(json.dumps),
        "math.sqrt": id(math.sqrt),
        "safe_functions": dict(restricted.SAFE_FUNCTIONS),
        "safe_builtins": dict(restricted.SAFE_BUILTINS),
    }


def _attempt(surface: str, code: str, canary: Path, sandbox: ScriptSandbox) -> str:
    """'refused' at deploy, 'stopped' when it ran and was stopped, 'ran' when it ran to the end harmlessly."""
    files = model(surface, code.replace("{canary}", str(canary)))
    try:
        validate_upload(files)
    except ModelValidationError:
        return "refused"
    if surface == "script":
        request = json.dumps({"script": code.replace("{canary}", str(canary)), "data": {"order": 1}}).encode()
        answer = asyncio.run(sandbox.run(request))
        assert SECRET not in json.dumps(answer) and "root:" not in json.dumps(answer), answer
        return "stopped" if "error" in answer else "ran"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(_run_in_engine, surface, files)
        try:
            future.result(timeout=20)
        except concurrent.futures.TimeoutError:
            raise AssertionError(f"{surface}: {code[:60]!r} did not stop within 20 s") from None
        except Exception as err:
            assert SECRET not in str(err) and "root:" not in str(err), err
            return "stopped"
    return "ran"


def test_the_suite_is_large_enough() -> None:
    assert len(PAYLOADS) + len(SCRIPT_ONLY) >= 50
    assert len(SURFACES) == 9


@pytest.mark.parametrize("surface", SURFACES)
def test_no_payload_escapes(surface: str, tmp_path: Path) -> None:
    sandbox = ScriptSandbox()
    before = _worker_state()
    outcomes: dict[str, list[str]] = {"refused": [], "stopped": [], "ran": []}
    payloads = PAYLOADS + (SCRIPT_ONLY if surface == "script" else [])
    started = time.monotonic()
    for index, code in enumerate(payloads):
        canary = tmp_path / f"canary-{index}"
        outcome = _attempt(surface, code, canary, sandbox)
        outcomes[outcome].append(code[:50])
        assert not canary.exists(), f"{surface}: {code!r} wrote a file"
        assert _worker_state() == before, f"{surface}: {code!r} changed the worker"
    # nothing that reaches for the interpreter's internals gets past deploy
    assert not [c for c in outcomes["ran"] if "__" in c or "import" in c], outcomes["ran"]
    print(f"{surface}: {len(payloads)} payloads in {time.monotonic() - started:.1f} s: "
          f"{len(outcomes['refused'])} refused at deploy, {len(outcomes['stopped'])} stopped, "
          f"{len(outcomes['ran'])} ran harmlessly")  # fmt: skip


async def test_hostile_code_on_the_platform_fails_only_its_own_instance(api: httpx.AsyncClient) -> None:
    """Through the real API and workers: refused at deploy, or stopped in its instance; the rest runs."""
    refused = await deploy_text(api, "escape.bpmn", model("condition", "().__class__.__base__.__subclasses__()")[
        "escape.bpmn"].decode())  # fmt: skip
    assert refused.status_code == 422 and refused.json()["detail"][0]["element_id"] == "x", refused.text
    bomb = model("condition", "9 ** 9 ** 9 > 1")["escape.bpmn"].decode().replace('id="escape"', 'id="escape_bomb"')
    assert (await deploy_text(api, "bomb.bpmn", bomb)).status_code == 201
    instance = await start(api, "escape_bomb")
    failed = await wait_for(api, instance, "failed")
    assert "exceeds the limits for model code" in failed["error"]
    control = model("condition", "order == 1")["escape.bpmn"].decode().replace('id="escape"', 'id="escape_ok"')
    assert (await deploy_text(api, "ok.bpmn", control)).status_code == 201
    done = await wait_for(api, await start(api, "escape_ok", {"order": 1}), "completed")
    assert "e" in done["completed"]
