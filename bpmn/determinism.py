"""Route SpiffWorkflow's clock and id generator through Temporal inside workflows.

SpiffWorkflow calls `uuid4()` for every task id, `time.time()` on every state change and
`datetime.now()` for timer events. Inside a Temporal workflow those must be replay-safe, because
task ids reach the inbox and activity ids and timer deadlines decide what runs next. The library is
imported passed through the sandbox (importing it inside the sandbox costs tens of ms per run and
trips on `uuid4`), so the sandbox cannot intercept these calls: we replace the names in Spiff's
modules with functions that ask Temporal when called from a workflow and the real clock otherwise
(parsing, validation and tests run Spiff outside any workflow).
"""

from __future__ import annotations

import time as _time
import uuid as _uuid
from datetime import UTC, datetime, tzinfo
from typing import Any

from temporalio import workflow

_installed = False
_CLOCK_ATTRIBUTE = "_spiff_clock"


def _uuid4() -> _uuid.UUID:
    if workflow.in_workflow():
        return workflow.uuid4()
    return _uuid.uuid4()


def _now(tz: tzinfo | None = None) -> datetime:
    if workflow.in_workflow():
        now = workflow.now()
        return now.astimezone(tz) if tz is not None else now.replace(tzinfo=None)
    return datetime.now(tz)


class _Clock:
    """Stands in for the `time` module inside `SpiffWorkflow.task`.

    `workflow.now()` stands still during a workflow task, but Spiff orders tasks by their
    `last_state_change` (completion order, unstructured joins): the clock must still advance with
    every call. The last value lives on the workflow object, so a replay from scratch starts over
    and produces the same sequence.
    """

    @staticmethod
    def time() -> float:
        if not workflow.in_workflow():
            return _time.time()
        now = workflow.now().timestamp()
        instance = workflow.instance()
        if instance is None:  # the workflow's __init__ runs before the instance is registered
            return now
        # 10 µs steps stay distinct after rounding to the microseconds a datetime keeps
        value = max(now, getattr(instance, _CLOCK_ATTRIBUTE, 0.0) + 1e-5)
        setattr(instance, _CLOCK_ATTRIBUTE, value)
        return value


def now_utc() -> datetime:
    """Now, in UTC: Temporal's time inside a workflow, the real clock outside (tests, validation)."""
    return _now(UTC)


class _DatetimeMeta(type):
    # Spiff's timer module uses `datetime` as a class: isinstance checks and class methods must
    # keep working against real datetime objects, only `now` changes.
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, datetime)

    def __getattr__(cls, name: str) -> Any:
        return getattr(datetime, name)


class _WorkflowDatetime(metaclass=_DatetimeMeta):
    now = staticmethod(_now)


def install() -> None:
    """Patch SpiffWorkflow once per process. Idempotent."""
    global _installed
    if _installed:
        return
    import SpiffWorkflow.bpmn.specs.event_definitions.timer as timer
    import SpiffWorkflow.task as task

    task.uuid4 = _uuid4
    task.time = _Clock
    timer.datetime = _WorkflowDatetime
    # Naive timer dates would otherwise be read in the worker's local time zone, which differs
    # between machines and so between an execution and its replay.
    timer.LOCALTZ = UTC
    _installed = True
