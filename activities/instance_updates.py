"""Handing an event to an instance through a workflow update that its validator may refuse."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

T = TypeVar("T")
# An update can reach a run in the moment it continues as new; the next run is the same instance.
_RUN_HANDOVER_TRIES = 3


async def update_if_waiting(client: Client, instance_id: str, update: str, arg: Any, result_type: type[T]) -> T | None:
    """The update's result, or None when the instance no longer waits for it (the subscription
    projection was stale: the validator refused it) or has ended meanwhile."""
    handle = client.get_workflow_handle(instance_id)
    try:
        result: T = await update_current_run(handle, update, arg, result_type=result_type)
    except WorkflowUpdateFailedError:
        return None
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            return None
        raise
    return result


async def update_current_run(
    handle: WorkflowHandle[Any, Any], update: str, arg: Any, *, result_type: type[T], update_id: str | None = None
) -> T:
    """The update, sent to the instance's current run: a run that ended by continuing as new
    (workflows/history_budget.py) refuses it, and the run after it takes it."""
    for attempt in range(_RUN_HANDOVER_TRIES):
        try:
            result: T = await handle.execute_update(update, arg, id=update_id, result_type=result_type)
            return result
        except RPCError as err:
            handed_over = err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
            if not handed_over or attempt == _RUN_HANDOVER_TRIES - 1:
                raise
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                raise  # it has really ended
    raise AssertionError("unreachable")
