from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from api.deps import AnyUser, OperatorUser, StateDep, TemporalDep
from api.errors import responses
from api.launch import launch
from api.schemas import (
    DB_INT_MAX,
    IncidentPublic,
    InstanceCreate,
    InstanceCreated,
    InstancePage,
    InstancePublic,
    InstanceSummary,
    VariablesUpdate,
)
from api.state import AppState
from api.status_projector import status_name
from api.updates import execute_update
from store import audit, instances
from workflows.contracts import (
    SET_VARIABLES_UPDATE,
    STATE_QUERY,
    ProcessResult,
    ProcessState,
    SetVariablesInput,
)

router = APIRouter(tags=["instances"])


@router.post(
    "/instances",
    status_code=status.HTTP_201_CREATED,
    responses=responses(
        404, 409, e409="The definition starts only on a message, or names an operator this API does not know"
    ),
)
async def start_instance(
    body: InstanceCreate,
    user: OperatorUser,
    state: StateDep,
    temporal: TemporalDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> InstanceCreated:
    """Start an instance. Send an `Idempotency-Key` header to retry safely after a lost answer (or an
    API that died half-way): the retry returns the same instance (header `Idempotent-Replayed: true`)
    and starts nothing new."""
    launched = await launch(
        state, temporal, key=body.definition_key, version=body.version, variables=body.variables,
        business_key=body.business_key, actor=user.subject, tenant=user.tenant, idempotency_key=idempotency_key,
    )  # fmt: skip
    if launched.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return InstanceCreated(
        id=launched.instance_id, definition_key=launched.key, version=launched.version, status="running"
    )


@router.get("/instances")
def list_instances(
    user: AnyUser,
    state: StateDep,
    status: Literal["running", "completed", "failed", "cancelled"] | None = None,
    definition_key: str | None = None,
    version: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    business_key: str | None = None,
    parent_id: Annotated[
        str | None, Query(max_length=64, description="instances this one's call activities started")
    ] = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> InstancePage:
    """Instances, newest first. A closure shows here within about a second of Temporal recording it."""
    where = instances.InstanceFilter(
        status=status, definition_key=definition_key, version=version, business_key=business_key,
        started_after=started_after, started_before=started_before, tenant=user.tenant, parent_id=parent_id,
    )  # fmt: skip
    with state.session_factory() as session:
        try:
            rows, next_cursor = instances.list_page(session, where=where, limit=limit, cursor=cursor)
        except instances.BadCursor as err:
            raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "msg": str(err)}]) from None
        items = [
            InstanceSummary(
                id=row.id, definition_key=row.definition_key, version=row.version, business_key=row.business_key,
                status=row.status, started_at=row.started_at, started_by=row.started_by, closed_at=row.closed_at,
                parent_id=row.parent_id, parent_element_id=row.parent_element_id,
            )
            for row in rows
        ]  # fmt: skip
    return InstancePage(items=items, next_cursor=next_cursor)


@router.get("/instances/{instance_id}", responses=responses(404))
async def get_instance(instance_id: str, user: AnyUser, state: StateDep, temporal: TemporalDep) -> InstancePublic:
    def load() -> tuple[str, int, str | None, str | None, str | None] | None:
        with state.session_factory() as session:
            row = instances.get(session, instance_id=instance_id, tenant=user.tenant)
            return (
                (row.definition_key, row.version, row.business_key, row.parent_id, row.parent_element_id)
                if row
                else None
            )

    found = await run_in_threadpool(load)
    if found is None:
        raise HTTPException(404, detail=f"instance '{instance_id}' not found")
    key, version, business_key, parent_id, parent_element_id = found
    handle = temporal.get_workflow_handle(instance_id, result_type=ProcessResult)
    try:
        description = await handle.describe()
    except RPCError as err:
        raise HTTPException(404, detail=f"instance '{instance_id}' not found in Temporal: {err.message}") from None
    current = status_name(description.status)
    view = await _view(handle, current)
    return InstancePublic(
        id=instance_id,
        definition_key=key,
        version=version,
        business_key=business_key,
        status=current,
        variables=view.variables,
        active=view.active if current == "running" else [],
        completed=view.completed,
        error=view.error,
        incidents=[
            IncidentPublic(
                id=i.id, instance_id=instance_id, element_id=i.element_id, message=i.message,
                error_type=i.error_type, created_at=datetime.fromisoformat(i.created_at),
            )
            for i in view.incidents
        ],
        parent_id=parent_id, parent_element_id=parent_element_id,
    )  # fmt: skip


@router.post("/instances/{instance_id}/cancel", responses=responses(404, 409, e409="The instance has ended"))
async def cancel_instance(
    instance_id: str, user: OperatorUser, state: StateDep, temporal: TemporalDep
) -> InstancePublic:
    """Cancel a running instance: its activities are cancelled, its open tasks and incidents closed."""
    tenant = await _known(state, instance_id, user.tenant)
    handle = temporal.get_workflow_handle(instance_id, result_type=ProcessResult)
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise HTTPException(409, detail=f"instance '{instance_id}' is {status_name(description.status)}")
    await handle.cancel()
    await _audit(state, "instance.cancel_requested", user.subject, instance_id, tenant)
    # The workflow closes its tasks and incidents before it ends: wait for that, briefly.
    for _ in range(100):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            break
        await asyncio.sleep(0.1)
    return await get_instance(instance_id, user, state, temporal)


@router.patch("/instances/{instance_id}/variables", responses=responses(404, 409, e409="The instance has ended"))
async def set_variables(
    instance_id: str, body: VariablesUpdate, user: OperatorUser, state: StateDep, temporal: TemporalDep
) -> InstancePublic:
    """Set process variables on a running instance; the tasks that run next see them."""
    tenant = await _known(state, instance_id, user.tenant)
    handle = temporal.get_workflow_handle(instance_id)
    await execute_update(
        handle,
        SET_VARIABLES_UPDATE,
        SetVariablesInput(body.variables, user.subject),
        result_type=ProcessState,
        subject=f"instance '{instance_id}'",
    )
    await _audit(state, "instance.variables_set", user.subject, instance_id, tenant, {"variables": body.variables})
    return await get_instance(instance_id, user, state, temporal)


async def _audit(
    state: AppState,
    action: str,
    actor: str,
    instance_id: str,
    tenant: str | None,
    data: dict[str, object] | None = None,
) -> None:
    def write() -> None:
        with state.session_factory.begin() as session:
            record = audit.api_operation(action, actor=actor, instance_id=instance_id, data=data, tenant=tenant)
            audit.append(session, records=[record])

    await run_in_threadpool(write)


async def _known(state: AppState, instance_id: str, tenant: str | None) -> str | None:
    """404 unless a caller of `tenant` may see the instance; returns the instance's own tenant."""

    def load() -> tuple[bool, str | None]:
        with state.session_factory() as session:
            row = instances.get(session, instance_id=instance_id, tenant=tenant)
            return row is not None, row.tenant if row else None

    found, owner = await run_in_threadpool(load)
    if not found:
        raise HTTPException(404, detail=f"instance '{instance_id}' not found")
    return owner


async def _view(handle: WorkflowHandle, current: str) -> ProcessState:
    if current == "completed":
        result: ProcessResult = await handle.result()
        return ProcessState(status="completed", variables=result.variables, active=[], completed=result.completed)
    # A query on a closed workflow replays its history on an engine worker: fine for the rare
    # failed or cancelled instance, and running ones answer from the worker's cache.
    try:
        state: ProcessState = await handle.query(STATE_QUERY, result_type=ProcessState)
    except RPCError as err:
        raise HTTPException(503, detail=f"the engine could not answer for this instance: {err.message}") from None
    return state
