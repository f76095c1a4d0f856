"""Non-interrupting boundary events that catch every event while their activity runs.

In BPMN (and Camunda 7 and 8) a non-interrupting message, signal, escalation or conditional boundary
event stays subscribed while the activity it is attached to is active: each event starts its own path. In
SpiffWorkflow 3.2 the boundary event is one task: it fires once, and a second message found nobody
waiting (the platform answered 404) while the activity was still open.

Here, when such a boundary event fires and its activity is still running, a fresh one takes its place
beside it, waiting, as the activity's split lays one out at the start (MAYBE, then updated to
WAITING), so the next event finds it. It is withdrawn with the activity as the first one would have
been (Spiff's `BoundaryEventJoin` cancels every waiting boundary event of the split).

A conditional one fires again each time its condition becomes true (as in Camunda): the fresh one
waits for the condition to turn false before it may fire (`AWAIT_FALSE`), or it would fire at once on
the same true condition.

Timers are left alone: a duration or date fires once by definition, and a cycle keeps its own task
waiting (Spiff adds a path per cycle).

A workflow opts in (`REARM` attribute of the top workflow set true): new instances do, through a
Temporal patch, so histories recorded before replay as they ran.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    EscalationEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

REARM = "aimatrix_rearm_boundaries"

_REPEATABLE = (MessageEventDefinition, SignalEventDefinition, EscalationEventDefinition, ConditionalEventDefinition)
AWAIT_FALSE = "aimatrix_await_false"  # internal data of a fresh conditional boundary event

_installed = False


def install() -> None:
    """Patch SpiffWorkflow's conditional events once: one marked `AWAIT_FALSE` does not fire while its
    condition still holds; once it does not, the mark goes and it fires the next time it does."""
    global _installed
    if _installed:
        return
    _installed = True
    original = ConditionalEventDefinition.has_fired

    def has_fired(self: Any, my_task: Task) -> bool:
        if not my_task.internal_data.get(AWAIT_FALSE):
            return bool(original(self, my_task))
        if not original(self, my_task):
            del my_task.internal_data[AWAIT_FALSE]
        my_task._set_internal_data(has_fired=False)
        return False

    ConditionalEventDefinition.has_fired = has_fired


def repeats(spec: Any) -> bool:
    """Whether a boundary event of this spec catches again after it fired (non-interrupting, and
    every one of its events is a message, a signal, an escalation or a condition)."""
    if not isinstance(spec, BoundaryEvent) or spec.cancel_activity:
        return False
    definition = spec.event_definition
    inner = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
    return bool(inner) and all(isinstance(d, _REPEATABLE) for d in inner)


def after_completed(task: Task) -> Task | None:
    """Called for each task the engine completed: if it is a repeating boundary event whose activity
    is still running, lay out the next one, waiting; it is returned (None otherwise)."""
    if not repeats(task.task_spec) or not getattr(task.workflow.top_workflow, REARM, False):
        return None
    split = task.parent
    if split is None or not isinstance(split.task_spec, BoundaryEventSplit):
        return None
    main = next((c for c in split.children if not isinstance(c.task_spec, BoundaryEvent)), None)
    if main is None or main.has_state(TaskState.FINISHED_MASK):
        return None  # the activity is done: its join has withdrawn (or will) the boundary events
    waiting = [c for c in split.children if c.task_spec is task.task_spec and c.has_state(TaskState.WAITING)]
    if waiting:
        return None
    fresh = split._add_child(task.task_spec, TaskState.MAYBE)
    if isinstance(task.task_spec.event_definition, ConditionalEventDefinition):
        fresh.internal_data[AWAIT_FALSE] = True
    fresh.task_spec._update(fresh)  # predicts its path and, not having fired, waits
    return fresh


def variables_set(task: Task, values: dict[str, Any]) -> None:
    """PATCH /variables set `values` on a waiting task: if it is a boundary event, on its split too.
    Spiff updates every waiting task after each task that completes, and an update copies the data
    of the task's parent over its own: a conditional boundary event's condition went back to the
    variables as they were when its activity started, and a fresh one (above) saw them there."""
    if not getattr(task.workflow.top_workflow, REARM, False):
        return
    split = task.parent
    if (
        isinstance(task.task_spec, BoundaryEvent)
        and split is not None
        and isinstance(split.task_spec, BoundaryEventSplit)
    ):
        split.set_data(**deepcopy(values))
