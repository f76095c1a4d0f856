"""The inbox: user tasks, who may work them, their forms, and completing them.

Claiming, releasing, assigning and completing are workflow updates: the workflow holds who may
work a task (its validator answers 403/409/422 before anything reaches the history) and records
each of them in the audit history with the actor; the rows here are its projection.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from api.auth import Role
from api.deps import Principal, StateDep, TaskUser, TemporalDep
from api.errors import FieldErrorsBody, responses
from api.schemas import DB_INT_MAX, TaskAssign, TaskComplete, TaskCompleted, TaskForm, TaskPublic
from api.state import AppState
from api.updates import execute_update
from bpmn import forms
from store import definitions, tasks
from workflows.contracts import (
    ASSIGN_TASK_UPDATE,
    COMPLETE_TASK_UPDATE,
    AssignTaskInput,
    CompleteTaskInput,
    CompleteTaskResult,
    TaskAssigned,
)

router = APIRouter(tags=["tasks"])

_E403 = "The caller may not work this task: not its assignee nor a candidate, or four-eyes forbids it"


def _public(row: tasks.TaskRow) -> TaskPublic:
    values = {k: v for k, v in row.__dict__.items() if k not in ("form", "ui_form")}
    return TaskPublic(**values, has_form=row.form is not None)


def _is_operator(user: Principal) -> bool:
    return user.has_any_role([Role.OPERATOR])


@router.get("/tasks", responses=responses(403, e403="`all=true` needs the operator role"))
def list_tasks(
    user: TaskUser,
    state: StateDep,
    task_state: Annotated[str, Query(alias="state", pattern="^(open|completed|cancelled|all)$")] = "open",
    candidate_group: Annotated[str | None, Query(max_length=255)] = None,
    assignee: Annotated[str | None, Query(max_length=255)] = None,
    process: Annotated[str | None, Query(max_length=255, description="a definition key")] = None,
    due_before: datetime | None = None,
    instance_id: Annotated[str | None, Query(max_length=64)] = None,
    all_tasks: Annotated[
        bool | None,
        Query(alias="all", description="every task of the tenant (operators; their default), not only the caller's"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[TaskPublic]:
    """The caller's tasks: assigned to them, or unassigned and open to them or their groups (or to
    anyone). Sorted by priority (highest first), then due date (soonest first), then age."""
    operator = _is_operator(user)
    if all_tasks and not operator:
        raise HTTPException(403, detail=f"'{user.subject}' may list only their own tasks: all=true needs 'operator'")
    everyone = operator if all_tasks is None else all_tasks
    viewer = None if everyone else tasks.Viewer(user.subject, user.groups)
    filters = tasks.TaskFilter(
        state=None if task_state == "all" else task_state,
        instance_id=instance_id,
        candidate_group=candidate_group,
        assignee=assignee,
        process=process,
        due_before=due_before,
    )
    with state.session_factory() as session:
        rows = tasks.list_tasks(session, viewer=viewer, filters=filters, limit=limit, offset=offset, tenant=user.tenant)
    return [_public(row) for row in rows]


def _load(state: AppState, task_id: str, user: Principal) -> tasks.TaskRow:
    with state.session_factory() as session:
        row = tasks.get(session, task_id=task_id, tenant=user.tenant)
    if row is None:
        raise HTTPException(404, detail=f"task '{task_id}' not found")
    return row


@router.get("/tasks/{task_id}", responses=responses(404))
def get_task(task_id: str, user: TaskUser, state: StateDep) -> TaskPublic:
    """One task, open or closed (completed, or cancelled by the process, e.g. by a boundary event)."""
    return _public(_load(state, task_id, user))


@router.get("/tasks/{task_id}/form", responses=responses(404, e404="No such task, or it has no form"))
def get_task_form(task_id: str, user: TaskUser, state: StateDep) -> TaskForm:
    """The task's form as JSON Schema (a Camunda form is mapped onto one), and its UI schema if any."""
    row = _load(state, task_id, user)
    if row.form is None:
        raise HTTPException(404, detail=f"task '{task_id}' has no form")
    with state.session_factory() as session:
        files = definitions.files(session, key=row.definition_key, version=row.version)
    schema = forms.load(row.form, files[row.form]).schema
    ui_schema: dict[str, Any] | None = None
    if row.ui_form is not None and row.ui_form in files:
        loaded = json.loads(files[row.ui_form])
        ui_schema = loaded if isinstance(loaded, dict) else None
    return TaskForm(task_id=task_id, file=row.form, schema=schema, ui_schema=ui_schema)


async def _assign(
    task_id: str, action: str, user: Principal, state: AppState, temporal: TemporalDep, assignee: str | None = None
) -> TaskPublic:
    row = await run_in_threadpool(_load, state, task_id, user)
    handle = temporal.get_workflow_handle(row.instance_id)
    await execute_update(
        handle,
        ASSIGN_TASK_UPDATE,
        AssignTaskInput(
            task_id=task_id,
            action=action,
            actor=user.subject,
            groups=sorted(user.groups),
            assignee=assignee,
            operator=_is_operator(user),
        ),
        result_type=TaskAssigned,
        subject=f"task '{task_id}'",
    )
    return _public(await run_in_threadpool(_load, state, task_id, user))


_ASSIGN_ERRORS = responses(403, 404, 409, e403=_E403, e409="The task is closed, or someone else holds it")


@router.post("/tasks/{task_id}/claim", responses=_ASSIGN_ERRORS)
async def claim_task(task_id: str, user: TaskUser, state: StateDep, temporal: TemporalDep) -> TaskPublic:
    """Take the task: from now on only the caller may complete it. Claiming one's own task again is
    a no-op; a task someone else holds is a 409."""
    return await _assign(task_id, "claim", user, state, temporal)


@router.post("/tasks/{task_id}/unclaim", responses=_ASSIGN_ERRORS)
async def unclaim_task(task_id: str, user: TaskUser, state: StateDep, temporal: TemporalDep) -> TaskPublic:
    """Give the task back to its candidates. Its assignee may; an operator may for anyone."""
    return await _assign(task_id, "unclaim", user, state, temporal)


@router.post("/tasks/{task_id}/assign", responses=_ASSIGN_ERRORS)
async def assign_task(
    task_id: str, body: TaskAssign, user: TaskUser, state: StateDep, temporal: TemporalDep
) -> TaskPublic:
    """Give the task to a user (operators), or release it with `null`. Four-eyes rules still hold:
    a user the task excludes cannot be made its assignee."""
    if not _is_operator(user):
        raise HTTPException(403, detail=f"assigning a task needs the role 'operator'; '{user.subject}' lacks it")
    return await _assign(task_id, "assign", user, state, temporal, assignee=body.assignee)


@router.post(
    "/tasks/{task_id}/complete",
    responses={
        **responses(403, 404, 409, e403=_E403, e409="The task is no longer open"),
        422: {
            "model": FieldErrorsBody,
            "description": "The data does not fit the task's form: `detail` lists each failing field (`loc`)",
        },
    },
)
async def complete_task(
    task_id: str,
    body: TaskComplete,
    user: TaskUser,
    state: StateDep,
    temporal: TemporalDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TaskCompleted:
    """Complete an open task as its assignee, or (while unassigned) as one of its candidates. Send an
    `Idempotency-Key` header to retry safely after a lost answer: Temporal deduplicates updates by
    id, so the retry gets the first call's outcome."""
    row = await run_in_threadpool(_load, state, task_id, user)
    handle = temporal.get_workflow_handle(row.instance_id)
    result = await execute_update(
        handle,
        COMPLETE_TASK_UPDATE,
        CompleteTaskInput(task_id=task_id, variables=body.variables, actor=user.subject, groups=sorted(user.groups)),
        result_type=CompleteTaskResult,
        subject=f"task '{task_id}'",
        update_id=f"complete/{task_id}/{user.subject}/{idempotency_key}" if idempotency_key else None,
    )
    return TaskCompleted(id=task_id, instance_id=row.instance_id, instance_status=result.instance_status)
