"""The external BPMN conformance corpus: which cases this engine runs, and how to run one.

The corpus (`shared/conformance`, see its SOURCES.md and manifest.json) holds models copied
unchanged from SpiffWorkflow's and bpmn-moddle's own test suites. A case runs twice: through the
real platform (REST API, Temporal, engine worker) and in memory with SpiffWorkflow driven by the
same `bpmn.runtime` helpers. Both runs complete the same open tasks, in the same order, with the
same data, and must end with the same status, data and completed elements.

Driving rules, identical on both sides:
- start with the case's `start_data`;
- timers win races: before any task is completed, every timer due within `TIMER_HORIZON` fires
  (the corpus's timers last milliseconds);
- among the open user/manual tasks, the one with the smallest element id is completed next, with
  the next unused entry of `inputs[element_id]` (else of `inputs["any_task"]`, else no data).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from bpmn import runtime
from bpmn.definitions import (
    BPMN_NS,
    DeployableDefinition,
    ModelValidationError,
    load_process,
    timer_definitions,
    validate_upload,
)
from tests.helpers import take_and_complete


def corpus_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "conformance"
    if (default / "manifest.json").is_file():
        return default
    configured = os.environ.get("AIMATRIX_CONFORMANCE_DIR")
    if configured and (Path(configured) / "manifest.json").is_file():
        return Path(configured)
    raise RuntimeError(
        f"the conformance corpus is neither at {default} nor at AIMATRIX_CONFORMANCE_DIR ({configured!r})"
    )


CORPUS = corpus_dir()
MANIFEST: dict[str, Any] = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))

# Timers whose deadline is this close are waited for (the corpus's durations go from 2 ms to
# 0.25 s); a run never waits on a timer further away than this.
TIMER_HORIZON = 2.0
# How long the platform gets to end or offer a task after each step.
STEP_TIMEOUT = 30.0
# How long an instance must show the same state to count as stalled, where the reference stalls.
STALL_PERIOD = 2.0

# -- scope ------------------------------------------------------------------------------------

# Features (the manifest's `features` and `xml_features`) of elements this engine runs: those of
# the supported element set, plus the markers and event variants the deployer accepts on them.
SUPPORTED_FEATURES = frozenset(
    {
        # element set
        "sequence", "script", "script_task", "user", "user_task", "manual_task", "service",
        "service_task", "xor", "parallel", "and", "inclusive", "or", "subprocess", "call_activity",
        "timer_intermediate", "int_catch", "timer", "timer_boundary", "boundary", "business_rule",
        "dmn", "terminate",
        # notation only: pools and lanes do not change execution
        "collaboration", "lanes",
        # accepted by the deployer on the elements above
        "mi", "mi_parallel", "mi_sequential", "multi_instance", "std_loop", "loop", "prescript",
        "postscript", "io_spec", "data_object", "error", "error_boundary", "escalation",
        "escalation_boundary", "transaction", "cancel", "payload", "timer_boundary_noninterrupting",
        "timer_cycle", "conditional", "signal", "int_throw", "message", "message_boundary",
        "message_boundary_noninterrupting", "event_gw", "multiple_event", "parallel_multiple_event",
        "event_subprocess",
        # exporter tags: each exporter's cases are judged by their elements
        "camunda", "signavio", "bizagi", "yaoqiang",
    }
)  # fmt: skip

# Why a feature puts a case out of scope. A case that waits for a message is in scope: the driver
# sends none, so it must wait on the platform where it waits in memory (the platform runs message
# events; tests/api/routes/test_messages.py and tests/test_event_gateway.py cover delivery).
UNSUPPORTED_FEATURES = {
    "send_task": "send tasks publish to other participants, which the case driver does not run "
    "(tests/test_message_send.py covers them)",
    "correlation": "Spiff correlation properties are refused by the deployer",
    "timer_start": "a timer start event starts its process through a Temporal Schedule, not by the case "
    "driver's start (tests/test_timer_start.py covers them)",
    "data_store": "data stores are not executed",
}

# Cases that use only supported elements but depend on something outside the BPMN standard that
# upstream's own test harness supplies.
EXCLUDED_CASES = {
    "spiffworkflow/tests/SpiffWorkflow/spiff/data/service_task.bpmn":
        "service tasks call operators other than http.request (bamboohr/GetPayRate, weather/CurrentTemp)",
    "spiffworkflow/tests/SpiffWorkflow/bpmn/data/Test-Workflows/Parallel-Multiple-Splits.bpmn20.xml":
        "vendor convention: exclusive flows without conditions, which upstream's test parser "
        "turns into conditions from the flow names",
    "spiffworkflow/tests/SpiffWorkflow/bpmn/data/timer-date-start.bpmn":
        "its script computes the timer date with datetime.now()/timedelta, which the restricted "
        "evaluator does not offer (upstream's script engine does); tagged timer_start, it is an "
        "intermediate timer",
    "spiffworkflow/tests/SpiffWorkflow/bpmn/data/timer-cycle.bpmn":
        "its script calls custom_function(), which upstream's test script engine provides",
    "spiffworkflow/tests/SpiffWorkflow/bpmn/data/Test-Workflows/CallActivity-Escalation-Test.bpmn20.xml":
        "conditions read vars(), a host function the restricted evaluator refuses",
    "bpmn-moddle/test/fixtures/bpmn/vendor/bizagi-nested-ns-definition.bpmn":
        "a drawing fixture for a parser: its process has no start event",
    "spiffworkflow/tests/SpiffWorkflow/bpmn/data/multiple-start.bpmn":
        "its one start event is a multiple one (either of two messages), which the driver does not send; "
        "a plain start is refused with a 409 naming them (tests/test_multiple_starts.py runs one)",
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        name: str = self.raw["case"]
        return name

    @property
    def features(self) -> set[str]:
        return set(self.raw.get("features", [])) | set(self.raw.get("xml_features", []))

    @property
    def paths(self) -> list[Path]:
        return [CORPUS / f for f in self.raw["files"]]

    @property
    def main(self) -> Path:
        return CORPUS / self.raw["main"]

    @property
    def start_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.raw.get("start_data") or {}
        return data

    @property
    def expected(self) -> dict[str, Any]:
        expected: dict[str, Any] = self.raw.get("expected") or {}
        return expected

    def upload(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for path in self.paths:
            assert path.name not in files, f"{self.name}: two files named {path.name}"
            files[path.name] = path.read_bytes()
        return files

    def inputs(self) -> Inputs:
        return Inputs({k: list(v) for k, v in (self.raw.get("inputs") or {}).items()})


def all_cases() -> list[Case]:
    return [Case(raw) for raw in MANIFEST["cases"]]


def out_of_scope_reason(case: Case) -> str | None:
    """None when the case is executable and runs on the engine; else why not."""
    if case.raw["category"] != "executable":
        return f"category {case.raw['category']}"
    if case.name in EXCLUDED_CASES:
        return EXCLUDED_CASES[case.name]
    reasons = sorted({UNSUPPORTED_FEATURES[f] for f in case.features if f in UNSUPPORTED_FEATURES})
    if reasons:
        return "; ".join(reasons)
    unknown = case.features - SUPPORTED_FEATURES
    if unknown:
        return f"features this suite does not know: {sorted(unknown)}"
    refused = refusal(case)
    if refused is not None:
        return f"refused at deploy: {refused}"
    wanted = case.raw.get("process_id")
    if wanted and wanted not in {d.key for d in validate_upload(case.upload())}:
        return (
            f"upstream runs '{wanted}', a collaboration, as one workflow of all its participants; here each "
            "participant's process is a definition of its own, and messages pass between instances"
        )
    return None


def refusal(case: Case) -> str | None:
    """Why the deployer refuses the case's files, or None."""
    try:
        validate_upload(case.upload())
    except ModelValidationError as err:
        return str(err)
    return None


def in_scope_cases() -> list[Case]:
    return [c for c in all_cases() if out_of_scope_reason(c) is None]


def refused_executable_cases() -> list[Case]:
    """Executable cases (SpiffWorkflow upstream runs them) whose files this platform refuses at deploy:
    each must be refused with a 4xx that names the problem, never deployed to do something else."""
    return [c for c in all_cases() if c.raw["category"] == "executable" and refusal(c) is not None]


def invalid_cases() -> list[Case]:
    return [c for c in all_cases() if c.raw["category"] == "invalid"]


# -- picking the process and the tasks ---------------------------------------------------------


def pick_definition(case: Case, definitions: list[DeployableDefinition]) -> DeployableDefinition:
    """The manifest's `process_id`, else the main file's one executable process that no call
    activity of the upload calls (the top of the call tree)."""
    by_key = {d.key: d for d in definitions}
    wanted = case.raw.get("process_id")
    if wanted:
        assert wanted in by_key, f"{case.name}: process {wanted!r} is not among {sorted(by_key)}"
        return by_key[wanted]
    called: set[str | None] = set()
    for path in case.paths:
        root = etree.fromstring(path.read_bytes())
        called.update(e.get("calledElement") for e in root.iter(f"{{{BPMN_NS}}}callActivity"))
    main = [d for d in definitions if next(iter(d.files)) == case.main.name]
    top = [d for d in main if d.key not in called]
    assert len(top) == 1, f"{case.name}: cannot tell which process to start among {[d.key for d in main]}"
    return top[0]


@dataclass
class Inputs:
    by_element: dict[str, list[dict[str, Any]]]

    def next_for(self, element_id: str) -> dict[str, Any]:
        for key in (element_id, "any_task"):
            queue = self.by_element.get(key)
            if queue:
                return queue.pop(0)
        return {}

    def unused(self) -> dict[str, list[dict[str, Any]]]:
        return {k: v for k, v in self.by_element.items() if v}


def choose(tasks: Iterable[Any], element_id: Any) -> Any:
    """The open task completed next: the smallest element id (ties keep their listed order)."""
    return min(tasks, key=element_id)


# -- outcomes ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # completed | failed | running (stuck: nothing open, no timer due)
    data: dict[str, Any]
    completed: list[str]
    steps: list[str]  # element ids of the tasks completed, in order
    error: str | None = None


def check_expected(case: Case, outcome: Outcome) -> None:
    """What upstream's own tests assert, where the manifest records it."""
    expected = case.expected
    status = expected.get("status")
    if status == "completed":
        assert outcome.status == "completed", outcome
    elif status == "run-error":
        assert outcome.status == "failed", outcome
    elif status is not None:
        raise AssertionError(f"{case.name}: unknown expected status {status!r}")
    for key, value in (expected.get("data") or {}).items():
        assert outcome.data.get(key) == runtime.json_safe(value), (key, outcome.data)
    for element in expected.get("completed_tasks_include", []):
        assert element in outcome.completed, (element, outcome.completed)


# -- the in-memory reference run -------------------------------------------------------------------


def _seconds_until(deadline: datetime) -> float:
    now = datetime.now(UTC) if deadline.tzinfo else datetime.now()
    return (deadline - now).total_seconds()


def _settle(bw: Any) -> None:
    """Run the engine, firing every timer due within the horizon."""
    while True:
        runtime.run_engine(bw)
        if bw.completed:
            return
        deadline = runtime.next_timer_deadline(bw)
        if deadline is None:
            return
        wait = _seconds_until(deadline)
        if wait > TIMER_HORIZON:
            return
        time.sleep(max(wait, 0) + 0.005)


def open_tasks(bw: Any) -> list[Any]:
    """What waits for a person: Spiff's manual tasks (user, manual and plain `bpmn:task` elements,
    which upstream's tests complete by hand too)."""
    return [t for t in bw.get_tasks(state=TaskState.READY) if t.task_spec.manual]


def run_in_memory(case: Case) -> Outcome:
    definition = pick_definition(case, validate_upload(case.upload()))
    process = load_process(definition.files, definition.key, definition.hash)
    bw = runtime.new_workflow(process, case.start_data)
    inputs = case.inputs()
    steps: list[str] = []
    error = None
    try:
        _settle(bw)
        while not bw.completed:
            tasks = open_tasks(bw)
            if not tasks:
                break
            task = choose(tasks, runtime.element_id)
            element = runtime.element_id(task) or ""
            task.set_data(**inputs.next_for(element))
            steps.append(element)
            task.run()
            _settle(bw)
    except SpiffWorkflowException as err:
        error = str(err)
    status = "failed" if error else "completed" if bw.completed else "running"
    # Inputs for elements of another, non-executable process of the same file (upstream's tests run
    # it too) are not ours to use; any other unused input means the run went elsewhere than upstream's.
    elements = {
        t.bpmn_id for spec in [process.spec, *process.subprocess_specs.values()] for t in spec.task_specs.values()
    }
    unused = {element: values for element, values in inputs.unused().items() if element in elements}
    assert not unused, f"{case.name}: inputs no task asked for: {unused}"
    return Outcome(status, runtime.variables(bw), runtime.completed_elements(bw), steps, error)


# -- the platform run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watch:
    """What to look for in an instance's `active` elements to know the platform has settled."""

    human: frozenset[str]  # elements whose tasks wait for a person
    due_timers: frozenset[str]  # timer events that fire within the horizon, once armed


def watch(case: Case, process_key: str) -> Watch:
    definitions = {d.key: d for d in validate_upload(case.upload())}
    definition = definitions[process_key]
    process = load_process(definition.files, definition.key, definition.hash)
    human, due = set(), set()
    for spec in [process.spec, *process.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            if task_spec.manual:
                human.add(task_spec.bpmn_id)
            for timer in timer_definitions(getattr(task_spec, "event_definition", None)):
                seconds = _timer_seconds(timer, case.start_data)
                if seconds is not None and seconds <= TIMER_HORIZON:
                    due.add(task_spec.bpmn_id)
    return Watch(frozenset(human), frozenset(due))


def _timer_seconds(timer: TimerEventDefinition, data: dict[str, Any]) -> float | None:
    """Seconds from arming to firing, read from the model and the start data; None for cycles
    and for timers that depend on other data."""
    if isinstance(timer, CycleTimerEventDefinition):
        return None
    try:
        value = eval(compile(timer.expression.strip(), "<timer>", "eval"), {"__builtins__": {}}, dict(data))
        if isinstance(timer, TimeDateEventDefinition):
            return max(_seconds_until(TimerEventDefinition.get_datetime(value)), 0.0)
        duration = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(value))
        return float(duration.total_seconds())
    except Exception:
        return None


async def _state(api: httpx.AsyncClient, instance_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The instance, and the tasks open in it and in the instances its call activities started (in
    memory the called process's tasks are the caller's; on the platform each call is an instance)."""
    instance = await api.get(f"/instances/{instance_id}")
    assert instance.status_code == 200, instance.text
    listed = await api.get("/tasks", params={"instance_id": instance_id})
    assert listed.status_code == 200, listed.text
    body, tasks = instance.json(), listed.json()
    called = await api.get("/instances", params={"parent_id": instance_id, "status": "running"})
    assert called.status_code == 200, called.text
    for child in called.json()["items"]:
        if (await api.get(f"/instances/{child['id']}")).status_code == 404:
            continue  # indexed by the call, not started yet: nothing open in it
        child_body, child_tasks = await _state(api, child["id"])
        body["active"] = [*body["active"], *child_body["active"]]
        tasks = [*tasks, *child_tasks]
    return body, tasks


async def _settled(
    api: httpx.AsyncClient, instance_id: str, seen: Watch, may_stall: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The instance once it has ended, or once every timer due within the horizon has fired and the
    inbox lists exactly the human tasks the engine has open (the inbox is written a moment after
    the engine opens or closes tasks).

    Where the reference run stalls (running, nothing open, nothing due), an instance that shows the
    same state for `STALL_PERIOD` has stalled too. After `STEP_TIMEOUT` the state is returned as it
    is: the comparison with the reference then says what differs.

    Timers are watched, not slept on: Temporal fires a timer of a few milliseconds up to a second
    late, so a due timer counts as fired once its event has left `active`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    last, since = None, loop.time()
    while True:
        body, tasks = await _state(api, instance_id)
        if body["status"] != "running" or loop.time() > deadline:
            return body, tasks
        active = set(body["active"])
        waiting = active & seen.human
        offered = {t["element_id"] for t in tasks}
        if not active & seen.due_timers and waiting == offered:
            if tasks:
                return body, tasks
            snapshot = (body["active"], body["completed"], body["variables"])
            if snapshot != last:
                last, since = snapshot, loop.time()
            elif may_stall and loop.time() - since > STALL_PERIOD:
                return body, tasks
        await asyncio.sleep(0.05)


async def run_on_platform(api: httpx.AsyncClient, case: Case, process_key: str, may_stall: bool) -> Outcome:
    files = [("files", (name, content, "application/xml")) for name, content in case.upload().items()]
    deployed = await api.post("/deployments", files=files)
    assert deployed.status_code in (200, 201), deployed.text
    assert process_key in [d["key"] for d in deployed.json()["definitions"]], deployed.text
    started = await api.post("/instances", json={"definition_key": process_key, "variables": case.start_data})
    assert started.status_code == 201, started.text
    instance_id = started.json()["id"]
    seen = watch(case, process_key)
    inputs = case.inputs()
    steps: list[str] = []
    while True:
        body, tasks = await _settled(api, instance_id, seen, may_stall)
        if body["status"] != "running" or not tasks:
            break
        task = choose(tasks, lambda t: t["element_id"])
        variables = inputs.next_for(task["element_id"])
        done = await take_and_complete(api, task, variables)
        assert done.status_code == 200, done.text
        steps.append(task["element_id"])
    if body["status"] == "failed":
        assert body.get("error"), body
    return Outcome(body["status"], body["variables"], body["completed"], steps, body.get("error"))
