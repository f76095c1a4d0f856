"""Timer start events: when a deployed process starts by itself.

Each top-level timer start event becomes a Temporal Schedule (api/timer_schedules.py). Its value
must be a literal, since no process data exists before the instance: an ISO 8601 date-time (once),
a duration (once, that long after the deploy) or a repeating interval `R[n]/[start/]duration`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent

from bpmn.parser import ProcessSpec


@dataclass(frozen=True)
class TimerStart:
    element_id: str
    kind: str  # date | duration | cycle
    value: str  # the ISO 8601 literal


@dataclass(frozen=True)
class Firing:
    """When a timer start event fires: at `first`, then every `every` (None: once), `count` times in
    all (None: without end)."""

    first: datetime
    every: timedelta | None
    count: int | None


def timer_starts(process: ProcessSpec) -> list[TimerStart]:
    found = []
    for spec in process.spec.task_specs.values():
        definition = getattr(spec, "event_definition", None)
        if not isinstance(spec, StartEvent) or not isinstance(definition, TimerEventDefinition):
            continue
        kind = (
            "cycle"
            if isinstance(definition, CycleTimerEventDefinition)
            else "duration"
            if isinstance(definition, DurationTimerEventDefinition)
            else "date"
            if isinstance(definition, TimeDateEventDefinition)
            else "unknown"
        )
        found.append(TimerStart(spec.bpmn_id, kind, literal(definition.expression or "")))
    return sorted(found, key=lambda t: t.element_id)


def literal(expression: str) -> str:
    """The ISO text of a timer literal (the parser quotes `PT5M` into `'PT5M'`)."""
    text = expression.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def firing(start: TimerStart, deployed_at: datetime) -> Firing:
    """When `start` fires, for a version deployed at `deployed_at`. Raises ValueError for a value
    that is not such a literal."""
    if start.kind == "date":
        moment = TimerEventDefinition.parse_time_or_duration(start.value)
        if not isinstance(moment, datetime):
            raise ValueError(f"{start.value!r} is not a date-time")
        return Firing(moment if moment.tzinfo else moment.replace(tzinfo=UTC), None, 1)
    if start.kind == "duration":
        duration = TimerEventDefinition.get_timedelta_from_start(
            TimerEventDefinition.parse_iso_duration(start.value), deployed_at
        )
        return Firing(deployed_at + duration, None, 1)
    if start.kind == "cycle":
        cycles, first, every = TimerEventDefinition.parse_iso_recurring_interval(start.value)
        if every <= timedelta(0):
            raise ValueError("a repeating timer needs a positive interval")
        # without an explicit start Spiff counts from now: the first start is one interval after the deploy
        explicit_start = start.value.count("/") == 2 and not start.value.split("/")[1].startswith("P")
        return Firing(first if explicit_start else deployed_at + every, every, None if cycles < 0 else cycles)
    raise ValueError(f"unsupported timer on start event '{start.element_id}'")
