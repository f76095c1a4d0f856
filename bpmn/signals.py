"""Signal events: a broadcast by name to every element waiting for it, in every instance.

SpiffWorkflow delivers a thrown signal only inside the instance that throws it, and its Spiff flavour
drops the payload of a catcher without `spiffworkflow:variableName`. Here:

- a throw (intermediate throw or end event) first reaches the catchers of its own instance, as in
  Spiff, then is queued on the workflow for the engine to broadcast to the other instances of the
  tenant and to processes with a signal start event (`thrown`);
- its payload is `spiffworkflow:payloadExpression` of the `bpmn:signal`, or the throw element's
  `zeebe:ioMapping` inputs (Camunda 8's signal variables); without either a signal carries nothing,
  so that one instance's data never lands in another's unasked;
- a catcher stores the payload in `spiffworkflow:variableName` when the signal names one, and
  otherwise merges a payload of variables into the process, as messages do.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.specs.event_definitions import SignalEventDefinition as SpiffSignalEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from bpmn import event_subprocesses, messages
from bpmn.event_subprocesses import EventStart


class PlatformSignalEventDefinition(SpiffSignalEventDefinition):
    def throw(self, my_task: Task) -> None:
        payload = None
        if self.expression is not None:
            payload = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        top = my_task.workflow.top_workflow
        # this instance's catchers now; none is no error: a signal is not kept for later
        catch(top, BpmnEvent(self, payload=deepcopy(payload)))
        thrown = BpmnEvent(self, payload=payload)
        thrown.element_id = my_task.task_spec.bpmn_id
        top.bpmn_events.append(thrown)

    def update_task_data(self, my_task: Task) -> None:
        payload = my_task.internal_data.pop(self.name, None)
        if self.variable is not None:
            my_task.data[self.variable] = payload
        elif isinstance(payload, dict):
            my_task.set_data(**{k: v for k, v in payload.items() if _is_variable(k)})


def _is_variable(name: object) -> bool:
    return isinstance(name, str) and name.isidentifier() and not name.startswith("_")


@dataclass(frozen=True)
class Thrown:
    element_id: str
    name: str
    payload: Any


def thrown(workflow: BpmnWorkflow) -> list[Thrown]:
    """Signals thrown since the last call, in order, for the engine to broadcast beyond the instance."""
    top = workflow.top_workflow
    found = [e for e in top.bpmn_events if isinstance(e.event_definition, PlatformSignalEventDefinition)]
    if found:
        top.bpmn_events = [e for e in top.bpmn_events if e not in found]
    return [Thrown(e.element_id, e.event_definition.name, e.payload) for e in found]


@dataclass(frozen=True)
class SignalWait:
    task: Task
    element_id: str
    name: str
    index: int | None = None  # which of an event-based gateway's events
    event_start: EventStart | None = None  # a signal event subprocess listening (no task waits)

    @property
    def id(self) -> str:
        if self.event_start is not None:
            return self.event_start.id
        return str(self.task.id) if self.index is None else f"{self.task.id}:{self.index}"


def waiting(workflow: BpmnWorkflow) -> list[SignalWait]:
    """Elements waiting for a signal (the process's own start events excluded: they are how an
    instance begins, not something a running one waits for)."""
    found = []
    for task in workflow.event_manager.tasks.values():
        if not task.has_state(TaskState.WAITING):
            continue
        if isinstance(task.task_spec, StartEvent) and task.workflow is workflow:
            continue
        definition = task.task_spec.event_definition
        if isinstance(definition, PlatformSignalEventDefinition):
            found.append(SignalWait(task, task.task_spec.bpmn_id, definition.name))
        elif isinstance(definition, MultipleEventDefinition):
            for index, inner in enumerate(definition.event_definitions):
                if isinstance(inner, PlatformSignalEventDefinition) and messages.unseen(task, index):
                    element_id = messages.event_element(task, index)
                    found.append(SignalWait(task, element_id, inner.name, index))
    for listener in event_subprocesses.listening(workflow):
        if isinstance(listener.definition, PlatformSignalEventDefinition):
            found.append(SignalWait(listener.root, listener.element_id, listener.definition.name,
                                    event_start=listener))  # fmt: skip
    return found


def _starts_on(listener: EventStart, name: str) -> bool:
    # a message or timer event subprocess may carry the same name: only a signal's starts on a signal
    return isinstance(listener.definition, PlatformSignalEventDefinition) and listener.definition.name == name


def catch(workflow: BpmnWorkflow, event: BpmnEvent) -> None:
    """Hand a signal to the instance: first it starts the signal event subprocesses listening for it
    (bpmn/event_subprocesses.py: after an interrupting one, none listens), then every element waiting
    for it catches it, the new event subprocesses' start events among them.

    Spiff's event manager did both, but would start an event subprocess whatever the process's state;
    the order (starts, then catchers) is Spiff's."""
    top = workflow.top_workflow
    name = event.event_definition.name
    started: set[str] = set()
    while True:  # listening again after each start: after an interrupting one, none is
        listener = next(
            (s for s in event_subprocesses.listening(top) if _starts_on(s, name) and s.id not in started), None
        )
        if listener is None:
            break
        event_subprocesses.start(top, listener)
        started.add(listener.id)
    catchers = [t for t in top.event_manager.tasks.values() if t.task_spec.catches(t, event)]
    for task in catchers:
        definition = task.task_spec.event_definition
        if isinstance(definition, MultipleEventDefinition) and not isinstance(task.task_spec, EventBasedGateway):
            # Spiff's multiple event only notes that it saw the signal: its payload would be lost
            for inner in definition.event_definitions:
                if isinstance(inner, PlatformSignalEventDefinition) and inner.catches(task, event):
                    task.internal_data[inner.name] = deepcopy(event.payload)
                    inner.update_task_data(task)
                    break
        task.task_spec.catch(task, event)
        task.task_spec._update(task)


def deliver(workflow: BpmnWorkflow, name: str, payload: Any) -> list[str]:
    """Hand the signal `name` to every element of the instance waiting for it; their element ids."""
    reached = [w.element_id for w in waiting(workflow) if w.name == name]
    if reached:
        catch(workflow, BpmnEvent(PlatformSignalEventDefinition(name), payload=deepcopy(payload)))
    return reached


def start_names(process: Any) -> list[str]:
    """The signals that start the process (messages.start_names)."""
    return messages.start_names(process, PlatformSignalEventDefinition)


def start_by_signal(workflow: BpmnWorkflow, name: str) -> bool:
    """Fire the signal start event `name` and withdraw the other start events (the signal's variables
    are the instance's start variables). False if the process has none."""
    return messages.start_by(
        workflow,
        lambda _, definition: isinstance(definition, PlatformSignalEventDefinition) and definition.name == name,
    )
