"""Workflow updates from route handlers, with the workflow's refusals turned into HTTP answers."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import HTTPException
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.instance_updates import update_current_run
from workflows.contracts import INVALID_FORM_DATA, INVALID_VARIABLES, TASK_FORBIDDEN

R = TypeVar("R")


async def execute_update(
    handle: WorkflowHandle[Any, Any],
    update: str,
    arg: Any,
    *,
    result_type: type[R],
    subject: str,
    update_id: str | None = None,
) -> R:
    """Run `update`. Invalid variables or form data → 422 naming the field; a caller the task does
    not allow → 403; anything else the workflow's validator or handler refused (a task or incident
    no longer open, a task someone else claimed, an instance not running), or an instance that has
    ended → 409 naming `subject`. Other RPC errors reach the app's 503 handler."""
    try:
        result: R = await update_current_run(handle, update, arg, result_type=result_type, update_id=update_id)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == INVALID_VARIABLES:
            raise HTTPException(422, detail=[{"loc": ["body", "variables"], "msg": cause.message}]) from None
        if isinstance(cause, ApplicationError) and cause.type == INVALID_FORM_DATA:
            fields = cause.details[0] if cause.details and isinstance(cause.details[0], list) else []
            detail = [{"loc": ["body", "variables", *f.get("loc", [])], "msg": f.get("msg", "")} for f in fields]
            raise HTTPException(422, detail=detail or cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == TASK_FORBIDDEN:
            raise HTTPException(403, detail=f"{subject}: {cause.message}") from None
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise HTTPException(409, detail=f"{subject}: {reason}") from None
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(409, detail=f"{subject}: its instance has ended") from None
        raise
    return result
