"""What the engine needs to know about a running SpiffWorkflow instance, in one place.

The Temporal workflow and the in-memory reference runs (conformance, tests) both read an instance
through these functions, so "active", "completed" and "open tasks" mean the same thing everywhere.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition,
    EscalationEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition as SpiffErrorEventDefinition
from SpiffWorkflow.spiff.specs.event_definitions import EscalationEventDefinition as SpiffEscalationEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from bpmn import (
    boundary_rearm,
    call_activities,
    event_subprocesses,
    ordered_outputs,
    pruning,
    timer_event_subprocesses,
)
from bpmn.definitions import timer_definitions
from bpmn.parser import ProcessSpec
from bpmn.script_engine import RestrictedScriptEngine
from bpmn.specs import ExternalServiceTask, MessagePublishTask, SandboxedScriptTask

# SpiffWorkflow treats an untyped `bpmn:task` as manual work, like SpiffArena: it waits in the inbox.
HUMAN_TASK_TYPES = ("UserTask", "ManualTask", "NoneTask")
_ELEMENT_TYPES = {"UserTask": "userTask", "ManualTask": "manualTask", "NoneTask": "task"}


def check_variables(variables: dict[str, Any]) -> None:
    """Variables become names in model code: they must be plain identifiers, not dunders."""
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"variable name {name!r} is not a valid identifier")
        if name.startswith("_"):
            raise ValueError(f"variable name {name!r} must not start with an underscore")


def new_workflow(
    process: ProcessSpec, variables: dict[str, Any] | None = None, *, inline_scripts: bool = True
) -> BpmnWorkflow:
    """`inline_scripts=False`: script tasks wait, STARTED, for the sandbox pool to run them."""
    engine = RestrictedScriptEngine(inline_scripts=inline_scripts)
    workflow = BpmnWorkflow(process.spec, process.subprocess_specs, script_engine=engine)
    setattr(workflow, ordered_outputs.ORDERED, True)  # the engine turns it off for older histories
    setattr(workflow, boundary_rearm.REARM, True)  # so too here
    setattr(workflow, event_subprocesses.CURRENT_DATA, True)  # and here
    setattr(workflow, pruning.BRANCHES, True)  # and here
    if variables:
        workflow.get_tasks(state=TaskState.READY)[0].set_data(**variables)
    return workflow


class _PassFull(Exception):
    """The pass ran its `max_steps`: it stops where it is, with engine work left."""


@dataclass
class EnginePass:
    removed: list[str]  # ids of the finished tasks cut from the tree
    cut_short: bool  # stopped at `max_steps` with engine work left


def run_engine(
    workflow: BpmnWorkflow,
    before_cut: Callable[[], bool] | None = None,
    on_uncaught: Callable[[Uncaught], None] | None = None,
) -> list[str]:
    """`run_pass` without a bound: the ids of the finished tasks cut from the tree."""
    return run_pass(workflow, before_cut, on_uncaught).removed


def run_pass(
    workflow: BpmnWorkflow,
    before_cut: Callable[[], bool] | None = None,
    on_uncaught: Callable[[Uncaught], None] | None = None,
    *,
    max_steps: int | None = None,
) -> EnginePass:
    """Run every engine task (scripts, gateways, events) until only external work is left; the ids
    of the finished tasks cut from a deep tree on the way (bpmn/pruning.py; `before_cut` is called
    before each cut, and False stops it). `on_uncaught` is called right after a task threw an error
    nothing caught (`uncaught_events`), before anything else runs: raising there stops the pass.

    `do_engine_steps` refreshes timers at the end, which can make more tasks ready; waiting
    conditional events are checked again here (Spiff refreshes only timers), so a condition that
    became true since the last pass (its data changed) fires now. A pass also stops where Spiff's
    iterator stops seeing tasks (depth 1,000): after a cut it goes on.

    `max_steps` bounds the pass: it stops after that many tasks, even with engine work left (a loop
    of gateways and business rule tasks never waits for anything outside): `cut_short` says so. Each
    step is the same on every replay, so the bound is deterministic.
    """
    pruner = pruning.Pruner(workflow, before_cut)
    top = workflow.top_workflow
    steps = 0

    def after_task(task: Task) -> None:
        nonlocal steps
        boundary_rearm.after_completed(task)  # before a cut: the fired event's split is still in the tree
        pruner.after_task(task)
        if on_uncaught is not None and top.bpmn_events:
            found = uncaught_events(workflow)
            if found.errors or found.escalations:
                on_uncaught(found)
        steps += 1
        if max_steps is not None and steps >= max_steps:
            raise _PassFull  # out of Spiff's loop, between two tasks: the next pass goes on from here

    while True:
        # timer event subprocesses: armed when the process first passes here, started once due
        timer_event_subprocesses.arm(workflow)
        timer_event_subprocesses.fire_due(workflow)
        try:
            workflow.do_engine_steps(did_complete_task=after_task)
        except _PassFull:
            pruner.prune()
            return EnginePass(pruner.removed, cut_short=True)
        _refresh_conditions(workflow)
        if pruner.prune():
            continue
        if not engine_work_left(workflow):
            return EnginePass(pruner.removed, cut_short=False)


def engine_work_left(workflow: BpmnWorkflow) -> bool:
    """Whether tasks the engine runs itself are ready."""
    return any(not t.task_spec.manual for t in workflow.get_tasks(state=TaskState.READY))


def _refresh_conditions(workflow: BpmnWorkflow) -> None:
    for task in list(workflow.event_manager.tasks.values()):
        definition = task.task_spec.event_definition
        # Over the token's own data, as it is now (PATCH /variables sets it): Spiff's `_update` would
        # first copy the data of the element before, undoing that change, then evaluate.
        if (
            task.has_state(TaskState.WAITING)
            and isinstance(definition, ConditionalEventDefinition)
            and definition.has_fired(task)
        ):
            task._ready()


def task_by_id(workflow: BpmnWorkflow, task_id: str) -> Task | None:
    task: Task | None = workflow.get_task_from_id(UUID(task_id))
    return task


def human_tasks(workflow: BpmnWorkflow) -> list[Task]:
    return [t for t in workflow.get_tasks(state=TaskState.READY) if type(t.task_spec).__name__ in HUMAN_TASK_TYPES]


_EXTERNAL = (ExternalServiceTask, SandboxedScriptTask)


def started_external_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """Tasks waiting for work outside the engine pass: service tasks and script tasks (run by the
    sandbox pool) for their activity, call activities for their called instance."""
    return [t for t in workflow.get_tasks(state=TaskState.STARTED) if _waits_outside(t)]


def is_started_external_task(task: Task) -> bool:
    return task.has_state(TaskState.STARTED) and _waits_outside(task)


def _waits_outside(task: Task) -> bool:
    return isinstance(task.task_spec, _EXTERNAL) or call_activities.waits_for_call(task)


def is_script_task(task: Task) -> bool:
    return isinstance(task.task_spec, SandboxedScriptTask)


def script_params(task: Task) -> dict[str, Any]:
    spec: SandboxedScriptTask = task.task_spec
    return {"script": spec.script, "data": json_safe(task.data)}


def complete_script_task(task: Task, result: Any) -> None:
    """The sandbox's answer `{"data": ...}`: what the script left is the task's data, as when Spiff
    runs a script inline."""
    data = result.get("data") if isinstance(result, dict) else None
    if not isinstance(data, dict):
        raise TypeError(f"the sandbox returned {type(result).__name__} without the script's variables")
    task.data = dict(data)
    task.complete()


def next_timer_deadline(workflow: BpmnWorkflow) -> datetime | None:
    """The earliest moment a waiting timer event can fire, or None if none waits."""
    deadlines: list[datetime] = []
    for task in workflow.get_tasks(state=TaskState.WAITING):
        for timer in timer_definitions(getattr(task.task_spec, "event_definition", None)):
            deadline = _deadline(task, timer)
            if deadline is not None:
                deadlines.append(deadline)
    event_subprocess_due = timer_event_subprocesses.deadline(workflow)
    if event_subprocess_due is not None:
        deadlines.append(event_subprocess_due)
    return min(deadlines) if deadlines else None


def _deadline(task: Task, timer: TimerEventDefinition) -> datetime | None:
    # Spiff stores the evaluated timer in the task's internal data the first time it checks it.
    value = task._get_internal_data("event_value")
    if value is None:
        return None
    if isinstance(timer, CycleTimerEventDefinition):
        if not isinstance(value, dict) or value.get("cycles") == 0:
            return None
        return datetime.fromisoformat(value["next"])
    parsed = TimerEventDefinition.parse_time_or_duration(value)
    return parsed if isinstance(parsed, datetime) else None


def complete_service_task(task: Task, result: Any) -> None:
    spec: ExternalServiceTask = task.task_spec
    if isinstance(spec, MessagePublishTask):
        pass  # the receipt (who got it) is in the audit history; the process data stays as it was
    elif spec.output_mappings:
        scope = result if isinstance(result, dict) else {"result": result}
        engine = task.workflow.script_engine
        for source, target in spec.output_mappings:
            task.data[target] = engine.environment.evaluate(source, dict(scope))
    elif spec.merge_result and isinstance(result, dict):
        check_variables(result)
        task.data.update(result)
    else:
        task.data[spec.result_variable] = result
    task.complete()


def throw_bpmn_error(task: Task, code: str, message: str) -> bool:
    """Throw BPMN error `code` at a service task (or a call activity whose called instance threw it).
    True if an event caught it.

    The task's own error boundary events come first (as in Camunda: the worker's error belongs to
    the task); otherwise it propagates like an error end event, to enclosing subprocess boundaries
    and event subprocesses.
    """
    # the Spiff flavour's class: event definitions only match their own class
    definition = SpiffErrorEventDefinition(code, code=code)
    return _throw_at(task, definition, {"error_code": code, "error_message": message})


def throw_escalation(task: Task, code: str) -> bool:
    """Throw escalation `code` at a call activity (its called instance raised it, and nothing there
    caught it): the call activity's escalation boundary events first, then enclosing ones. True if an
    event caught it; one nobody catches has no effect, as in BPMN."""
    return _throw_at(task, SpiffEscalationEventDefinition(code, code=code), {"escalation_code": code})


def _throw_at(task: Task, definition: Any, payload: dict[str, Any]) -> bool:
    event = BpmnEvent(definition, payload=payload, target=task.workflow)
    parent = task.parent
    for boundary in parent.children if parent is not None else []:
        spec = boundary.task_spec
        if boundary is task or not isinstance(spec, BoundaryEvent) or not boundary.has_state(TaskState.WAITING):
            continue
        if spec.event_definition.catches(boundary, event):
            spec.catch(boundary, event)
            spec._update(boundary)
            return True
    top = task.workflow.top_workflow
    before = len(top.bpmn_events)
    top.catch(event)
    uncaught = [e for e in top.bpmn_events[before:] if e is event]
    if uncaught:
        top.bpmn_events.remove(event)
        return False
    return True


@dataclass(frozen=True)
class UncaughtError:
    code: str
    description: str  # its element, code and name


@dataclass(frozen=True)
class Uncaught:
    errors: list[UncaughtError]
    escalations: list[str]  # codes


def uncaught_events(workflow: BpmnWorkflow) -> Uncaught:
    """Errors and escalations thrown in the last pass that nothing caught, taken out.

    SpiffWorkflow keeps such an event aside (`bpmn_events`) and goes on: an error end event nobody
    catches ends its subprocess as a plain end event would, and the instance completes. Taken out
    here, for the engine to fail the instance (or, in a called instance, to hand the error to the
    call activity). An escalation nobody catches has no effect in BPMN (and Camunda), except that a
    called instance's goes to its call activity.
    """
    top = workflow.top_workflow
    errors = [e for e in top.bpmn_events if isinstance(e.event_definition, ErrorEventDefinition)]
    escalations = [e for e in top.bpmn_events if isinstance(e.event_definition, EscalationEventDefinition)]
    if not errors and not escalations:
        return Uncaught([], [])
    top.bpmn_events = [e for e in top.bpmn_events if e not in errors and e not in escalations]
    described = []
    for event in errors:
        definition = event.event_definition
        code = getattr(definition, "code", None) or definition.name
        thrower = _latest_thrower(workflow, code)
        where = f"end event '{thrower}'" if thrower else "an error end event"
        name = f" ({definition.name})" if definition.name and definition.name != code else ""
        described.append(
            UncaughtError(str(code), f"{where} threw error '{code}'{name}, and no boundary event caught it")
        )
    codes = [str(getattr(e.event_definition, "code", None) or e.event_definition.name) for e in escalations]
    return Uncaught(described, codes)


def _latest_thrower(workflow: BpmnWorkflow, code: str) -> str | None:
    throwers = [
        t
        for t in workflow.get_tasks(state=TaskState.COMPLETED)
        if isinstance(getattr(t.task_spec, "event_definition", None), ErrorEventDefinition)
        and (getattr(t.task_spec.event_definition, "code", None) or t.task_spec.event_definition.name) == code
        and not isinstance(t.task_spec, BoundaryEvent)
    ]
    latest = max(throwers, key=lambda t: t.last_state_change, default=None)
    return element_id(latest) if latest is not None else None


def remember_called(workflow: BpmnWorkflow, element_ids: list[str]) -> None:
    """The elements a called instance completed count among this instance's completed elements."""
    pruning.remember_completed(workflow, element_ids)


def set_variables(workflow: BpmnWorkflow, values: dict[str, Any]) -> None:
    """Set process variables on every active token, so the tasks that run next see them."""
    mask = TaskState.READY | TaskState.STARTED | TaskState.WAITING
    for task in workflow.get_tasks(state=mask):
        task.set_data(**values)
        if task.has_state(TaskState.WAITING):
            boundary_rearm.variables_set(task, values)


def evaluate_params(task: Task) -> dict[str, Any]:
    spec: ExternalServiceTask = task.task_spec
    return {name: value["value"] for name, value in spec.evaluate_params(task).items()}


def element_id(task: Task) -> str | None:
    bpmn_id: str | None = getattr(task.task_spec, "bpmn_id", None)
    return bpmn_id


def active_elements(workflow: BpmnWorkflow) -> list[str]:
    mask = TaskState.READY | TaskState.STARTED | TaskState.WAITING
    return _unique(element_id(t) for t in workflow.get_tasks(state=mask))


def completed_elements(workflow: BpmnWorkflow) -> list[str]:
    """Element ids that completed, in the order their tasks last changed state (those of a cut-off
    part of the tree first: they completed before what is left)."""
    tasks = sorted(workflow.get_tasks(state=TaskState.COMPLETED), key=lambda t: t.last_state_change)
    return _unique([*pruning.pruned_completed(workflow), *(element_id(t) for t in tasks)])


def _unique(ids: Any) -> list[str]:
    seen: dict[str, None] = {}
    for bpmn_id in ids:
        if bpmn_id:
            seen.setdefault(bpmn_id)
    return list(seen)


def json_safe(value: Any) -> Any:
    """Task data as JSON: what scripts produce (sets, dates, tuples) must cross Temporal's wire."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if workflow.completed:
        data.update(workflow.data)
    else:
        # the latest change wins: a branch that ran earlier (an event subprocess started with the data
        # of its moment, a parallel path) does not hide what the flow did since, wherever the tree
        # puts it
        tasks = workflow.get_tasks(state=TaskState.COMPLETED | TaskState.READY | TaskState.STARTED)
        for task in sorted(tasks, key=lambda t: t.last_state_change):
            data.update(task.data)
    safe: dict[str, Any] = json_safe(data)
    return safe


@dataclass(frozen=True)
class HumanTaskView:
    id: str
    element_id: str
    name: str
    element_type: str
    lane: str | None
    documentation: str | None


def describe_human_task(task: Task) -> HumanTaskView:
    spec = task.task_spec
    return HumanTaskView(
        id=str(task.id),
        element_id=spec.bpmn_id,
        name=spec.bpmn_name or spec.bpmn_id,
        element_type=_ELEMENT_TYPES.get(type(spec).__name__, "userTask"),
        lane=getattr(spec, "lane", None),
        documentation=getattr(spec, "documentation", None),
    )


@dataclass(frozen=True)
class Transition:
    task_id: str
    element_id: str
    element_type: str
    action: str  # entered | completed | cancelled


_ACTIVE = TaskState.READY | TaskState.STARTED | TaskState.WAITING
_ENTERED = _ACTIVE | TaskState.COMPLETED | TaskState.ERROR


def transitions(workflow: BpmnWorkflow, seen: dict[str, str]) -> list[Transition]:
    """What changed since `seen` (task id → last action, updated here), in the order it happened.

    Predicted tasks (FUTURE, LIKELY, MAYBE) are not entered; one cancelled before it was entered
    is a branch not taken, not an event.
    """
    found: list[tuple[float, int, Transition]] = []
    for task in workflow.get_tasks():
        bpmn_id = element_id(task)
        if not bpmn_id:
            continue
        key = str(task.id)
        before = seen.get(key)
        kind = type(task.task_spec).__name__
        if task.has_state(_ENTERED) and before is None:
            found.append((task.last_state_change, 0, Transition(key, bpmn_id, kind, "entered")))
            before = seen[key] = "entered"
        if task.has_state(TaskState.COMPLETED) and before == "entered":
            found.append((task.last_state_change, 1, Transition(key, bpmn_id, kind, "completed")))
            seen[key] = "completed"
        elif task.has_state(TaskState.CANCELLED) and before == "entered":
            found.append((task.last_state_change, 1, Transition(key, bpmn_id, kind, "cancelled")))
            seen[key] = "cancelled"
    found.sort(key=lambda item: (item[0], item[1]))
    return [transition for _, _, transition in found]
