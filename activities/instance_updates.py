"""Handing an event to an instance through a workflow update that its validator may refuse."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

T = TypeVar("T")


async def update_if_waiting(client: Client, instance_id: str, update: str, arg: Any, result_type: type[T]) -> T | None:
    """The update's result, or None when the instance no longer waits for it (the subscription
    projection was stale: the validator refused it) or has ended meanwhile."""
    handle = client.get_workflow_handle(instance_id)
    try:
        result: T = await handle.execute_update(update, arg, result_type=result_type)
    except WorkflowUpdateFailedError:
        return None
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            return None
        raise
    return result
