"""Message events: which elements wait for which message, and handing a message to one of them.

Correlation is explicit, as in Camunda 8: a subscription's correlation key is the value of the
`zeebe:subscription correlationKey` expression of its `bpmn:message`, evaluated over the process
data when the element starts waiting; without one, it is the instance's business key. A message
reaches a subscription whose message name and key both equal its own.

Delivery bypasses Spiff's event manager on purpose: its correlation properties are evaluated over
the payload with the script engine and would let one instance's message decide another's fate;
here the engine picks the one task a message is for and fires it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from bpmn import event_subprocesses
from bpmn.event_subprocesses import EventStart
from bpmn.parser import ProcessSpec

# Tasks the engine runs before the start events exist (BpmnStartTask, StartEventSplit).
_MAX_SETUP_STEPS = 10


@dataclass(frozen=True)
class MessageWait:
    task: Task
    element_id: str
    message_name: str
    key_expression: str | None
    # An event-based gateway waits for several events in one task: which of its definitions this is
    # (None for a plain catch event, receive task or boundary event).
    index: int | None = None
    # A message event subprocess listening: no task waits (it starts when the message comes)
    event_start: EventStart | None = None

    @property
    def id(self) -> str:
        """The subscription's id: the task's, plus the event's index for a gateway's events; an event
        subprocess's own (`EventStart.id`)."""
        if self.event_start is not None:
            return self.event_start.id
        return str(self.task.id) if self.index is None else f"{self.task.id}:{self.index}"


def _definitions(definition: Any) -> list[tuple[int | None, MessageEventDefinition]]:
    if isinstance(definition, MessageEventDefinition):
        return [(None, definition)]
    if isinstance(definition, MultipleEventDefinition):  # an event-based gateway's, or a multiple event's
        return [(i, d) for i, d in enumerate(definition.event_definitions) if isinstance(d, MessageEventDefinition)]
    return []


def unseen(task: Task, index: int | None) -> bool:
    """Whether the `index`th event of a waiting multiple event is still awaited: a parallel multiple
    event waits for each of its events once (those seen are not subscribed again)."""
    if index is None:
        return True
    definition = task.task_spec.event_definition.event_definitions[index]
    seen = task.internal_data.get("seen_events") or []
    return not any(event.event_definition == definition for event in seen)


def annotate(specs: list[Any], correlation_keys: dict[str, str]) -> None:
    """Attach each message's correlation key expression to the event definitions that use it."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            for _, definition in _definitions(getattr(task_spec, "event_definition", None)):
                definition.correlation_key_expression = correlation_keys.get(definition.name)


def event_element(task: Task, index: int | None) -> str:
    """The element an event of a waiting task is drawn as: an event-based gateway's `index`th event is
    the catch event after it; any other task's events (a multiple catch or boundary event's too) are
    the task's own element."""
    if index is not None and isinstance(task.task_spec, EventBasedGateway):
        return str(task.task_spec.outputs[index].bpmn_id)
    return str(task.task_spec.bpmn_id)


def waiting(workflow: BpmnWorkflow) -> list[MessageWait]:
    """Elements waiting for a message, in the order they started waiting (start events excluded),
    then the message event subprocesses listening. An event-based gateway's message events are named
    by the catch event that follows it."""
    found = []
    for task in workflow.event_manager.tasks.values():
        if isinstance(task.task_spec, StartEvent) or not task.has_state(TaskState.WAITING):
            continue
        for index, definition in _definitions(task.task_spec.event_definition):
            if not unseen(task, index):
                continue
            key_expression = getattr(definition, "correlation_key_expression", None)
            element_id = event_element(task, index)
            found.append(MessageWait(task, element_id, definition.name, key_expression, index))
    for listener in event_subprocesses.listening(workflow):
        if isinstance(listener.definition, MessageEventDefinition):
            key_expression = getattr(listener.definition, "correlation_key_expression", None)
            found.append(
                MessageWait(listener.root, listener.element_id, listener.definition.name, key_expression,
                            event_start=listener)
            )  # fmt: skip
    return found


def correlation_value(wait: MessageWait) -> str | None:
    """The subscription's key: the expression's value as text (None when there is no expression)."""
    if wait.key_expression is None:
        return None
    engine = wait.task.workflow.script_engine
    if wait.event_start is not None:  # over the process's data as it is when it starts listening
        value = engine.environment.evaluate(wait.key_expression, event_subprocesses.current_data(wait.task.workflow))
    else:
        value = engine.evaluate(wait.task, wait.key_expression)
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return str(value)
    raise TypeError(f"a correlation key must be a string or a number, not {type(value).__name__}")


def deliver(task: Task, payload: dict[str, Any], index: int | None = None) -> None:
    """Fire a waiting message element with `payload` as the message's variables; `index` picks one
    of an event-based gateway's events (the gateway then takes that path and drops the others) or of
    a multiple event's (it fires on any one, a parallel one once it has seen each)."""
    definition = task.task_spec.event_definition
    if index is not None:
        inner = definition.event_definitions[index]
        if not getattr(inner, "message_var", None):
            task.set_data(**payload)  # as below: without a message variable, the variables merge
        elif not isinstance(task.task_spec, EventBasedGateway):
            # a gateway hands the payload to its message variable when it runs; a multiple event
            # (Spiff's MultipleEventDefinition) hands it to nothing
            task.data[inner.message_var] = dict(payload)
        event = BpmnEvent(inner, payload=dict(payload))
        task.task_spec.catch(task, event)
        task.task_spec._update(task)
        return
    variable = getattr(definition, "message_var", None)
    if variable:
        # SpiffArena's `spiffworkflow:messageVariable`: the payload lands in that one variable
        task.internal_data[definition.name] = dict(payload)
    else:
        task.set_data(**payload)  # Camunda's rule: message variables merge into the process
    task._set_internal_data(event_fired=True)
    task.task_spec._update(task)


def start_names(process: ProcessSpec, kind: type[Any] = MessageEventDefinition) -> list[str]:
    """The names of the `kind` events (messages by default) that start the process: its top-level
    start events' (each of a multiple start event's events starts it too)."""
    return sorted(
        {
            definition.name
            for spec in process.spec.task_specs.values()
            if isinstance(spec, StartEvent)
            for definition in start_definitions(spec)
            if isinstance(definition, kind)
        }
    )


def start_definitions(spec: Any) -> list[Any]:
    """The events that start a start event: its definition, or each of a multiple one's (any of them
    starts it; parallel multiple start events are refused at deploy)."""
    definition = spec.event_definition
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition]


def has_plain_start(process: ProcessSpec) -> bool:
    return any(
        isinstance(spec, StartEvent) and isinstance(spec.event_definition, NoneEventDefinition)
        for spec in process.spec.task_specs.values()
    )


def start_by_message(workflow: BpmnWorkflow, name: str) -> bool:
    """Fire the message start event `name` and withdraw the other start events. False if none."""
    return start_by(
        workflow, lambda _, definition: isinstance(definition, MessageEventDefinition) and definition.name == name
    )


def start_by_element(workflow: BpmnWorkflow, element_id: str) -> bool:
    """Fire the start event `element_id` (a timer start event whose Temporal Schedule fired) and
    withdraw the other start events. False if the process has no such start event."""
    return start_by(workflow, lambda spec, _: spec.bpmn_id == element_id)


def start_by(workflow: BpmnWorkflow, chosen: Callable[[Any, Any], bool]) -> bool:
    """Fire the start event one of whose events is `chosen(spec, definition)` and withdraw the
    others. False if none is.

    Spiff fires a none start event as soon as it is ready, so this runs before the first engine
    pass: it advances only to where the start events exist, then picks one.
    """
    for _ in range(_MAX_SETUP_STEPS):
        starts = [t for t in workflow.get_tasks() if isinstance(t.task_spec, StartEvent)]
        if starts and all(t.has_state(TaskState.READY | TaskState.WAITING) for t in starts):
            break
        ready = [t for t in workflow.get_tasks(state=TaskState.READY) if not isinstance(t.task_spec, StartEvent)]
        if not ready:
            return False
        ready[0].run()
    else:
        return False
    found = next(((t, d) for t in starts for d in start_definitions(t.task_spec) if chosen(t.task_spec, d)), None)
    if found is None:
        return False
    target, definition = found
    for other in starts:
        if other is not target:
            other.cancel()
    fire_start_event(target, definition)
    return True


def fire_start_event(target: Task, definition: Any) -> None:
    """Fire a waiting start event on `definition`, one of its events, as if that event had come."""
    if isinstance(target.task_spec.event_definition, CycleTimerEventDefinition):
        # A cycle timer adds its outgoing path once per cycle (its `update_task`) and leaves by no
        # path of its own: the schedule that fired it does the cycling, so add the path this once.
        for output in target.task_spec.outputs:
            child = target._add_child(output, TaskState.FUTURE)
            child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
            child.task_spec._update(child)
    if isinstance(target.task_spec.event_definition, MultipleEventDefinition):
        # a multiple event fires once it has seen one of its events, not on `event_fired`
        target._set_internal_data(seen_events=[BpmnEvent(definition)])
    else:
        target._set_internal_data(event_fired=True)
    target.task_spec._update(target)
