from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import StateDep, TaskUser, TemporalDep
from api.schemas import TaskComplete, TaskCompleted, TaskPublic
from store import tasks
from workflows.contracts import (
    COMPLETE_TASK_UPDATE,
    INVALID_VARIABLES,
    TASK_NOT_OPEN,
    CompleteTaskInput,
    CompleteTaskResult,
)

router = APIRouter(tags=["tasks"])


@router.get("/tasks")
def list_tasks(
    _: TaskUser,
    state: StateDep,
    instance_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TaskPublic]:
    with state.session_factory() as session:
        rows = tasks.list_open(session, instance_id=instance_id, limit=limit, offset=offset)
    return [TaskPublic(**row.__dict__) for row in rows]


@router.post("/tasks/{task_id}/complete")
async def complete_task(
    task_id: str,
    body: TaskComplete,
    # Any approver may complete any open task for now: assigning tasks to users or groups comes later.
    user: TaskUser,
    state: StateDep,
    temporal: TemporalDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TaskCompleted:
    """Complete an open task. Send an `Idempotency-Key` header to retry safely after a lost answer:
    Temporal deduplicates updates by id, so the retry gets the first call's outcome."""

    def load() -> tasks.TaskRow | None:
        with state.session_factory() as session:
            return tasks.get(session, task_id=task_id)

    row = await run_in_threadpool(load)
    if row is None:
        raise HTTPException(404, detail=f"task '{task_id}' not found")
    handle = temporal.get_workflow_handle(row.instance_id)
    try:
        result = await handle.execute_update(
            COMPLETE_TASK_UPDATE,
            CompleteTaskInput(task_id=task_id, variables=body.variables, actor=user.subject),
            id=f"complete/{task_id}/{user.subject}/{idempotency_key}" if idempotency_key else None,
            result_type=CompleteTaskResult,
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == TASK_NOT_OPEN:
            raise HTTPException(409, detail=f"task '{task_id}' is no longer open") from None
        if isinstance(cause, ApplicationError) and cause.type == INVALID_VARIABLES:
            raise HTTPException(422, detail=[{"loc": ["body", "variables"], "msg": cause.message}]) from None
        raise HTTPException(409, detail=f"task '{task_id}' could not be completed: {cause}") from None
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(409, detail=f"task '{task_id}' is no longer open: its instance has ended") from None
        raise HTTPException(503, detail=f"the engine could not be reached: {err.message}") from None
    return TaskCompleted(id=task_id, instance_id=row.instance_id, instance_status=result.instance_status)
