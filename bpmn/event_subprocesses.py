"""Event subprocesses that behave the same in every instance of a definition.

SpiffWorkflow 3.2 links an event subprocess (message, signal, error, escalation start) into its
process's graph the first time one is triggered, by changing the shared spec (`BpmnStartTask.trigger_wf`
connects it to the start and end). Since parsed definitions are shared between instances and workflow
runs (bpmn/definitions.py caches them), the first instance to trigger one changed every later one:
before it, the process's end did not wait for a running event subprocess (its data was lost); after
it, every new instance's start predicted the event subprocess, and an instance that never triggered it
never ended. A worker that had triggered one replayed a history differently from a fresh one.

Here every event subprocess is linked once, when the definition is parsed, and the start task no
longer predicts them: an event subprocess runs only when triggered, and the process's end waits
for it and takes its data, in the first instance as in the thousandth.

Message, signal and timer event subprocesses (at the process level) listen while their process runs,
as in Camunda: `listening` lists them, the engine publishes each as a subscription, and `start` triggers
one for a message or signal that came. A non-interrupting one listens on after it started (each
event its own run beside the flow); once an interrupting one started, none listens any more (the
rest of the process was ended). Spiff would trigger one for any event of that name handed to its
event manager; messages never go there (bpmn/messages.py) and signals are handed over here first
(bpmn/signals.py `catch`), so every start goes through these rules.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.control import BpmnStartTask
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

# attribute of the top workflow: an event subprocess starts with the process's data as it is now and
# hands back only what it changed; False replays histories from before, where it started with the
# variables changed since the start at their start values and handed back all of its copy
CURRENT_DATA = "aimatrix_event_subprocess_current_data"
_STARTED_WITH = "aimatrix_started_with"  # internal data of a triggered event subprocess task

_installed = False


def install() -> None:
    """Patch SpiffWorkflow's subprocess tasks once: an event subprocess returns what it changed."""
    global _installed
    if _installed:
        return
    _installed = True
    original = SubWorkflowTask.update_data

    def update_data(self: Any, my_task: Task, subworkflow: Any) -> None:
        if _STARTED_WITH not in my_task.internal_data:
            original(self, my_task, subworkflow)
            return
        _returned_data(my_task, subworkflow)

    SubWorkflowTask.update_data = update_data


def _returned_data(my_task: Task, subworkflow: Any) -> None:
    """An event subprocess ends. Spiff gives its task the subprocess's whole copy of the data, which
    then reaches the process's end: a variable the flow changed meanwhile went back to the value the
    event subprocess started with whenever it ended last. Here only what it changed (or added) goes
    back: into the tasks of the process still running, so that the flow goes on with it (as in
    Camunda, where both share the process's variables), and onto the process's data as it is now,
    which its task carries to the end."""
    started_with = my_task.internal_data.pop(_STARTED_WITH)
    ended_with = deepcopy(subworkflow.last_task.data)
    changed = {k: v for k, v in ended_with.items() if k not in started_with or started_with[k] != v}
    top = my_task.workflow.top_workflow
    for workflow in [top, *top.get_active_subprocesses()]:
        if _within(workflow, subworkflow):
            continue  # the event subprocess itself, ending
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.STARTED | TaskState.WAITING):
            if task is not my_task:
                task.set_data(**deepcopy(changed))
    my_task.data = {**_current_data(top), **changed}


def _within(workflow: Any, ancestor: Any) -> bool:
    while workflow is not None:
        if workflow is ancestor:
            return True
        workflow = workflow.parent_workflow
    return False


class StableStartTask(BpmnStartTask):
    """A process's start: its children are the process's start paths; the event subprocesses
    linked to it become children only when triggered (`trigger_wf`)."""

    def _predict_hook(self, my_task: Task) -> None:
        state = TaskState.FUTURE if my_task.has_state(TaskState.DEFINITE_MASK) else my_task.state
        my_task._sync_children([s for s in self.outputs if s.name not in self.trigger_specs], state)

    def trigger_wf(self, my_task: Task, spec_name: str) -> Any:
        """Spiff's, without linking the spec (done once, above), and with the triggered task's own
        path (to the process's end) laid out, as the start's prediction would have."""
        spec = self._wf_spec.task_specs[spec_name]
        child = my_task._add_child(spec, TaskState.FUTURE)
        child.triggered = True
        # the process's data as it is now (Spiff's child would start with the data the process started with)
        current = _current_data(my_task.workflow)
        child.set_data(**current)
        spec._predict(child, mask=TaskState.FUTURE)
        if _interrupting(my_task.workflow, spec_name):
            _interrupt(my_task.workflow, child)
        spec._update(child)
        if getattr(my_task.workflow.top_workflow, CURRENT_DATA, False):
            # `_update` merged the root's data (what the process started with) over it, and the new
            # subprocess's first tasks took that: a variable changed since the start went back to
            # its start value. Lay the data as it is now over them again.
            subprocess = my_task.workflow.top_workflow.subprocesses.get(child.id)
            for task in [child, *(subprocess.get_tasks() if subprocess is not None else [])]:
                if not task.has_state(TaskState.PREDICTED_MASK):
                    task.set_data(**current)
            # what it started with: when it ends, only what it changed goes back (`_returned_data`)
            child.internal_data[_STARTED_WITH] = deepcopy(current)
        return child.id


@dataclass(frozen=True)
class EventStart:
    """An event subprocess a message or signal can start now."""

    id: str  # "<root task id>/<n>": unique among every instance's subscriptions, stable in this one
    spec_name: str  # the event subprocess (a key of the process's trigger specs)
    element_id: str  # its start event
    definition: Any  # a MessageEventDefinition, a signal's or a timer's
    interrupting: bool
    root: Task  # the instance's root task (never cut from the tree): what the subscription hangs on
    spec: Any  # the start event's task spec


def listening(workflow: Any) -> list[EventStart]:
    """The message, signal and timer event subprocesses of the process that an event would start now
    (bpmn/timer_event_subprocesses.py starts the timer ones):
    while the process runs and no interrupting event subprocess has started."""
    top = workflow.top_workflow
    start = top.spec.start
    if top.completed or not isinstance(start, StableStartTask) or interrupted(top):
        return []
    found: list[EventStart] = []
    for name in start.trigger_specs:
        for event_start in getattr(top.subprocess_specs.get(name), "bpmn_start_events", None) or []:
            definition = event_start.event_definition
            if isinstance(definition, MessageEventDefinition | SignalEventDefinition | TimerEventDefinition):
                found.append(
                    EventStart(
                        id=f"{top.task_tree.id}/{len(found)}",
                        spec_name=name,
                        element_id=event_start.bpmn_id,
                        definition=definition,
                        interrupting=bool(getattr(event_start, "interrupting", False)),
                        root=top.task_tree,
                        spec=event_start,
                    )
                )
    return found


def is_start_id(subscription_id: str) -> bool:
    """Whether a subscription id is an event subprocess's (`EventStart.id`), not a waiting task's."""
    return "/" in subscription_id


def interrupted(workflow: Any) -> bool:
    """Whether an interrupting event subprocess has started in the process (it then runs alone)."""
    top = workflow.top_workflow
    return any(
        getattr(task, "triggered", False)
        and not task.has_state(TaskState.CANCELLED)
        and _interrupting(top, task.task_spec.name)
        for task in top.task_tree.children
    )


def start(workflow: Any, event_start: EventStart) -> Task:
    """Start the event subprocess: its start event, waiting for the engine to hand it the event."""
    top = workflow.top_workflow
    child_id = top.spec.start.trigger_wf(top.task_tree, event_start.spec_name)
    subprocess = top.subprocesses[child_id]
    return next(
        task
        for task in subprocess.get_tasks(state=TaskState.WAITING)
        if getattr(task.task_spec, "bpmn_id", None) == event_start.element_id
    )


def current_data(workflow: Any) -> dict[str, Any]:
    """The process's data as it is now (what a correlation key of an event subprocess reads)."""
    return _current_data(workflow.top_workflow)


def _current_data(workflow: Any) -> dict[str, Any]:
    mask = TaskState.COMPLETED | TaskState.READY | TaskState.STARTED | TaskState.WAITING
    tasks = [t for t in workflow.get_tasks(state=mask) if t.workflow is workflow]
    data: dict[str, Any] = {}
    for task in sorted(tasks, key=lambda t: t.last_state_change):
        data.update(task.data)
    return data


def _interrupting(workflow: Any, spec_name: str) -> bool:
    sp_spec = workflow.top_workflow.subprocess_specs.get(spec_name) if workflow.top_workflow else None
    starts = getattr(sp_spec, "bpmn_start_events", None) or []
    return any(getattr(start, "interrupting", False) for start in starts)


def _interrupt(workflow: Any, kept: Task) -> None:
    """An interrupting event subprocess ends everything else its process is doing (SpiffWorkflow
    3.2 starts it beside the rest, which then goes on as if nothing happened)."""
    ends = {workflow.spec.end.name, "End"}
    for task in list(workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK)):
        if task.workflow is not workflow or task is kept or task.is_descendant_of(kept):
            continue
        if task.task_spec.name in ends or task.has_state(TaskState.CANCELLED):
            continue
        task.cancel()


def stabilize(specs: list[Any]) -> None:
    """Link every event subprocess of these process specs into its process, once."""
    for spec in specs:
        start = spec.start
        if not isinstance(start, BpmnStartTask):
            continue
        start.__class__ = StableStartTask
        for name in start.trigger_specs:
            task_spec = spec.task_specs[name]
            if start not in task_spec.inputs:
                start.connect(task_spec)
                task_spec.connect(spec.end)
