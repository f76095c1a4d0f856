from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from api.deps import CurrentUser, StateDep, TemporalDep
from api.schemas import InstanceCreate, InstanceCreated, InstancePublic
from bpmn.definitions import start_input
from bpmn.operators import UnknownOperatorError
from bpmn.runtime import check_variables
from store import definitions, instances
from workflows.contracts import (
    PROCESS_WORKFLOW,
    STATE_QUERY,
    ProcessResult,
    ProcessState,
)

router = APIRouter(tags=["instances"])

_STATUS = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "cancelled",
}


@router.post("/instances", status_code=status.HTTP_201_CREATED)
async def start_instance(
    body: InstanceCreate, user: CurrentUser, state: StateDep, temporal: TemporalDep
) -> InstanceCreated:
    try:
        check_variables(body.variables)
    except ValueError as err:
        raise HTTPException(422, detail=[{"loc": ["body", "variables"], "msg": str(err)}]) from None

    def load() -> tuple[int, str, dict[str, str]]:
        with state.session_factory() as session:
            found = definitions.get(session, key=body.definition_key, version=body.version)
            if found is None:
                version = f" version {body.version}" if body.version else ""
                raise HTTPException(404, detail=f"definition '{body.definition_key}'{version} not found")
            return found.version, found.hash, definitions.files(session, key=found.key, version=found.version)

    version, digest, files = await run_in_threadpool(load)
    instance_id = str(uuid.uuid4())
    try:
        inp = await run_in_threadpool(
            lambda: start_input(
                instance_id=instance_id, key=body.definition_key, version=version, digest=digest, files=files,
                variables=body.variables, business_key=body.business_key, started_by=user.subject,
            )
        )  # fmt: skip
    except UnknownOperatorError as err:
        # deployed while a pool existed that this API process does not know (configuration drift)
        raise HTTPException(409, detail=f"definition '{body.definition_key}' cannot start here: {err}") from None
    await temporal.start_workflow(
        PROCESS_WORKFLOW,
        inp,
        id=instance_id,
        task_queue=state.settings.engine_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )

    def record() -> None:
        with state.session_factory.begin() as session:
            instances.record_start(
                session, instance_id=instance_id, key=body.definition_key, version=version,
                business_key=body.business_key, started_by=user.subject,
            )  # fmt: skip

    await run_in_threadpool(record)
    return InstanceCreated(id=instance_id, definition_key=body.definition_key, version=version, status="running")


@router.get("/instances/{instance_id}")
async def get_instance(instance_id: str, _: CurrentUser, state: StateDep, temporal: TemporalDep) -> InstancePublic:
    def load() -> tuple[str, int, str | None] | None:
        with state.session_factory() as session:
            row = instances.get(session, instance_id=instance_id)
            return (row.definition_key, row.version, row.business_key) if row else None

    found = await run_in_threadpool(load)
    if found is None:
        raise HTTPException(404, detail=f"instance '{instance_id}' not found")
    key, version, business_key = found
    handle = temporal.get_workflow_handle(instance_id, result_type=ProcessResult)
    try:
        description = await handle.describe()
    except RPCError as err:
        raise HTTPException(404, detail=f"instance '{instance_id}' not found in Temporal: {err.message}") from None
    status_name = _STATUS.get(description.status, "running") if description.status else "running"
    view = await _view(handle, status_name)
    return InstancePublic(
        id=instance_id,
        definition_key=key,
        version=version,
        business_key=business_key,
        status=status_name,
        variables=view.variables,
        active=view.active if status_name == "running" else [],
        completed=view.completed,
        error=view.error,
    )


async def _view(handle: WorkflowHandle, status_name: str) -> ProcessState:
    if status_name == "completed":
        result: ProcessResult = await handle.result()
        return ProcessState(status="completed", variables=result.variables, active=[], completed=result.completed)
    # A query on a closed workflow replays its history on an engine worker: fine for the rare
    # failed or cancelled instance, and running ones answer from the worker's cache.
    try:
        state: ProcessState = await handle.query(STATE_QUERY, result_type=ProcessState)
    except RPCError as err:
        raise HTTPException(503, detail=f"the engine could not answer for this instance: {err.message}") from None
    return state
