"""Timer start events as Temporal Schedules: one per definition key, kept in step with its latest
version at every deploy (created, updated, or deleted when the new version has no timer start).
A Schedule survives restarts of everything but Temporal's own store, and its firings are in
Temporal's history like any other workflow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from bpmn.timer_starts import Firing, TimerStart, firing
from workflows.contracts import TIMER_START_WORKFLOW, TimerStartInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def schedule_id(key: str) -> str:
    return f"timer-start.{key}"


def _spec(when: Firing) -> ScheduleSpec:
    if when.every is None:
        at = when.first.astimezone(UTC)
        once = ScheduleCalendarSpec(
            second=(ScheduleRange(at.second),), minute=(ScheduleRange(at.minute),), hour=(ScheduleRange(at.hour),),
            day_of_month=(ScheduleRange(at.day),), month=(ScheduleRange(at.month),), year=(ScheduleRange(at.year),),
        )  # fmt: skip
        return ScheduleSpec(calendars=[once], time_zone_name="UTC")
    # Intervals count from the epoch: the offset puts the first firing exactly at `first`.
    offset = (when.first - _EPOCH) % when.every
    return ScheduleSpec(
        intervals=[ScheduleIntervalSpec(every=when.every, offset=offset)],
        start_at=when.first - timedelta(milliseconds=1),
    )


def build(key: str, tenant: str | None, start: TimerStart, deployed_at: datetime, task_queue: str) -> Schedule:
    when = firing(start, deployed_at)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TIMER_START_WORKFLOW,
            TimerStartInput(key, start.element_id, tenant),
            id=schedule_id(key),
            task_queue=task_queue,
        ),
        spec=_spec(when),
        state=ScheduleState(
            note=f"timer start event '{start.element_id}' of '{key}': {start.value}",
            limited_actions=when.count is not None,
            remaining_actions=when.count or 0,
        ),
    )


async def sync(
    client: Client, *, key: str, tenant: str | None, starts: list[TimerStart], deployed_at: datetime, task_queue: str
) -> None:
    """Make the key's Schedule match its latest version's timer start event (one at most)."""
    handle = client.get_schedule_handle(schedule_id(key))
    if not starts:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = build(key, tenant, starts[0], deployed_at, task_queue)
    try:
        await client.create_schedule(schedule_id(key), schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
    when = firing(starts[0], deployed_at)
    if when.every is None and when.first <= datetime.now(UTC):
        await handle.trigger()  # a date already past: due now, as in Camunda
