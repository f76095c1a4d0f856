"""Timer event subprocesses at the process level: an SLA that fires while the process runs.

In BPMN (and Camunda) a timer event subprocess is armed when its process starts: a duration counts
from then, a date is a date, a cycle fires each period. A non-interrupting one runs beside the flow
each time it fires (a reminder); an interrupting one ends the rest of the process and runs in its
place. Once the process has ended, it never fires.

SpiffWorkflow 3.2 instead runs a timer event subprocess as a path from the process's start: the
process could not end before the timer fired (and then ran the subprocess after the work was done),
and an interrupting one interrupted nothing. Here it is one of the event subprocesses that listen
(bpmn/event_subprocesses.py `listening`): armed when the process first listens, its next due time
kept in the instance's root task (never cut from the tree, serialized with it), and started by the
engine's pass once due. Its own start event is then fired at once: its timer has done its work.

The expression is evaluated once, when the timer is armed, over the process's data at that moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException

from bpmn import event_subprocesses, messages
from bpmn.determinism import now_utc
from bpmn.event_subprocesses import EventStart

# internal data of the root task: start event id → {"next": ISO time, "cycles": left (-1: unbounded)}
_ARMED = "aimatrix_timer_event_subprocesses"


def listen_for_timers(specs: list[Any], subprocess_specs: dict[str, Any]) -> None:
    """At parse time: SpiffWorkflow connects timer event subprocesses to the process's start as paths
    of their own; make them event subprocesses that listen (bpmn/event_subprocesses.py), as message
    and signal ones are. (The process's own start events are its start's other outputs.)"""
    for spec in specs:
        start = spec.start
        for output in list(start.outputs):
            sp_spec = subprocess_specs.get(getattr(output, "spec", None) or "")
            if not isinstance(output, SubWorkflowTask) or sp_spec is None or output.spec in start.trigger_specs:
                continue
            starts = getattr(sp_spec, "bpmn_start_events", None) or []
            if starts and all(isinstance(s.event_definition, TimerEventDefinition) for s in starts):
                start.trigger_specs.append(output.spec)
                spec.task_specs.setdefault(output.spec, output)


def _timers(workflow: BpmnWorkflow) -> list[EventStart]:
    return [s for s in event_subprocesses.listening(workflow) if isinstance(s.definition, TimerEventDefinition)]


def arm(workflow: BpmnWorkflow) -> None:
    """Arm the timer event subprocesses that listen and are not armed yet, from now."""
    timers = _timers(workflow)
    if not timers:
        return
    root = workflow.top_workflow.task_tree
    armed: dict[str, dict[str, Any]] = root.internal_data.setdefault(_ARMED, {})
    for timer in timers:
        if timer.element_id in armed:
            continue
        expression = timer.definition.expression
        try:
            value = workflow.script_engine.environment.evaluate(expression, event_subprocesses.current_data(workflow))
            armed[timer.element_id] = _first(timer, value)
        except Exception as err:  # the model's expression over the model's data: named as a timer event's is
            raise WorkflowException(f"Error evaluating expression '{expression}'", task_spec=timer.spec) from err


def _first(timer: EventStart, value: Any) -> dict[str, Any]:
    now = now_utc()
    definition = timer.definition
    if isinstance(definition, CycleTimerEventDefinition):
        cycles, start, period = TimerEventDefinition.parse_iso_recurring_interval(value)
        if period <= timedelta(0):
            raise ValueError(f"timer '{timer.element_id}': the cycle {value!r} has no period")
        if timer.interrupting:
            cycles = 1  # it ends the process: a second period never comes
        return {"next": start.isoformat(), "cycles": cycles, "period": period.total_seconds()}
    if isinstance(definition, DurationTimerEventDefinition):
        due = now + TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(value))
        return {"next": due.isoformat(), "cycles": 1, "period": 0}
    if isinstance(definition, TimeDateEventDefinition):
        due = TimerEventDefinition.parse_time_or_duration(value)
        return {"next": due.isoformat(), "cycles": 1, "period": 0}
    raise ValueError(f"timer '{timer.element_id}': not a date, a duration or a cycle")


def deadline(workflow: BpmnWorkflow) -> datetime | None:
    """The next moment a timer event subprocess is due, or None."""
    armed = workflow.top_workflow.task_tree.internal_data.get(_ARMED)
    if not armed:
        return None
    due = [datetime.fromisoformat(armed[t.element_id]["next"]) for t in _timers(workflow) if _pending(armed, t)]
    return min(due) if due else None


def fire_due(workflow: BpmnWorkflow) -> list[str]:
    """Start every timer event subprocess that is due; the start event ids, in the order they fired.
    A cycle fires once however many periods passed (a worker that was down does not make up the
    reminders it missed) and is next due at the first period boundary after now."""
    armed = workflow.top_workflow.task_tree.internal_data.get(_ARMED)
    if not armed:
        return []
    fired: list[str] = []
    now = now_utc()
    while True:  # listening again after each start: after an interrupting one, none is
        due = [
            t
            for t in _timers(workflow)
            if t.element_id not in fired
            and _pending(armed, t)
            and datetime.fromisoformat(armed[t.element_id]["next"]) <= now
        ]
        if not due:
            return fired
        timer = min(due, key=lambda t: datetime.fromisoformat(armed[t.element_id]["next"]))
        state = armed[timer.element_id]
        if state["cycles"] > 0:
            state["cycles"] -= 1
        if state["period"] > 0:
            next_due = datetime.fromisoformat(state["next"])
            periods = (now - next_due) // timedelta(seconds=state["period"]) + 1
            state["next"] = (next_due + periods * timedelta(seconds=state["period"])).isoformat()
        started = event_subprocesses.start(workflow, timer)
        messages.fire_start_event(started, timer.definition)
        fired.append(timer.element_id)


def _due(armed: dict[str, dict[str, Any]], timer: EventStart, now: datetime) -> bool:
    return _pending(armed, timer) and datetime.fromisoformat(armed[timer.element_id]["next"]) <= now


def _pending(armed: dict[str, dict[str, Any]], timer: EventStart) -> bool:
    state = armed.get(timer.element_id)
    return state is not None and state["cycles"] != 0
