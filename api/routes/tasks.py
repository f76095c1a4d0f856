from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, TaskUser, TemporalDep
from api.errors import responses
from api.schemas import DB_INT_MAX, TaskComplete, TaskCompleted, TaskPublic
from api.updates import execute_update
from store import tasks
from workflows.contracts import (
    COMPLETE_TASK_UPDATE,
    CompleteTaskInput,
    CompleteTaskResult,
)

router = APIRouter(tags=["tasks"])


@router.get("/tasks")
def list_tasks(
    user: TaskUser,
    state: StateDep,
    instance_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[TaskPublic]:
    with state.session_factory() as session:
        rows = tasks.list_open(session, instance_id=instance_id, limit=limit, offset=offset, tenant=user.tenant)
    return [TaskPublic(**row.__dict__) for row in rows]


@router.get("/tasks/{task_id}", responses=responses(404))
def get_task(task_id: str, user: TaskUser, state: StateDep) -> TaskPublic:
    """One task, open or closed (completed, or cancelled by the process, e.g. by a boundary event)."""
    with state.session_factory() as session:
        row = tasks.get(session, task_id=task_id, tenant=user.tenant)
    if row is None:
        raise HTTPException(404, detail=f"task '{task_id}' not found")
    return TaskPublic(**row.__dict__)


@router.post("/tasks/{task_id}/complete", responses=responses(404, 409, e409="The task is no longer open"))
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
            return tasks.get(session, task_id=task_id, tenant=user.tenant)

    row = await run_in_threadpool(load)
    if row is None:
        raise HTTPException(404, detail=f"task '{task_id}' not found")
    handle = temporal.get_workflow_handle(row.instance_id)
    result = await execute_update(
        handle,
        COMPLETE_TASK_UPDATE,
        CompleteTaskInput(task_id=task_id, variables=body.variables, actor=user.subject),
        result_type=CompleteTaskResult,
        subject=f"task '{task_id}'",
        update_id=f"complete/{task_id}/{user.subject}/{idempotency_key}" if idempotency_key else None,
    )
    return TaskCompleted(id=task_id, instance_id=row.instance_id, instance_status=result.instance_status)
