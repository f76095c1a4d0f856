"""The digital twin: simulate a deployed definition, calibrated from its own audit history.

A simulation is a durable workflow on the twin pool (its id is the simulation's id): the API starts
it, reads its progress from the activity's heartbeats and its result when it is done. Who asked, for
which definition and tenant, travels in the workflow's memo, so reading one needs no table here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AnyUser, OperatorUser, StateDep, TemporalDep
from api.errors import responses
from api.status_projector import status_name
from store import definitions
from workers.twin.plots import cycle_time_histogram_svg, utilisation_svg
from workers.twin.request import BadRequest, SimulationRequest
from workflows.contracts import SIMULATION_WORKFLOW, TWIN_SIMULATE_ACTIVITY, TWIN_TASK_QUEUE, ServiceTaskInput

router = APIRouter(tags=["twin"])
SimulationId = Annotated[str, Path(max_length=64, pattern=r"^sim-[0-9a-f-]{36}$")]
_PLOTS = {"cycle-time": cycle_time_histogram_svg, "utilisation": utilisation_svg}


class SimulationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition_key: str = Field(min_length=1, max_length=255)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    horizon: str | float | None = Field(default=None, description="simulated time per replication: P30D or seconds")
    replications: int | None = Field(default=None, ge=1, le=500)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    calibrate_from: str | float | None = Field(
        default=None, description="fit the model to this much audit history back from now (P30D), or 'all'"
    )
    overrides: dict[str, Any] | None = Field(
        default=None,
        description="what-if: arrival (a distribution) or arrival_rate_per_s, durations {element: distribution}, "
        "capacities {resource: servers or null}, branches {gateway: {target: probability}}, warmup_s",
    )
    sla: str | float | None = Field(default=None, description="the SLA on cycle time: PT4H or seconds")


class SimulationAccepted(BaseModel):
    id: str
    status: str


class SimulationPublic(BaseModel):
    id: str
    definition_key: str
    status: Literal["running", "completed", "failed", "cancelled"]
    requested_by: str | None
    progress: float | None = Field(description="0 to 1 while it runs (from the pool's heartbeats)")
    phase: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="when completed: the figures and the calibration")


@router.post(
    "/twin/simulations",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(404, e404="No such definition visible to the caller"),
)
async def create_simulation(
    body: SimulationCreate, user: OperatorUser, state: StateDep, temporal: TemporalDep
) -> SimulationAccepted:
    """Start a simulation: Monte Carlo replications of the definition with the overrides, calibrated
    from its audit history when `calibrate_from` is given. Poll `GET /twin/simulations/{id}`."""
    params = body.model_dump(exclude_none=True)
    try:
        request = SimulationRequest.parse(params)
    except BadRequest as err:
        raise HTTPException(422, detail=str(err)) from None

    def visible() -> bool:
        with state.session_factory() as session:
            found = definitions.get(session, key=request.definition_key, version=request.version, tenant=user.tenant)
            return found is not None

    if not await run_in_threadpool(visible):
        label = f" version {request.version}" if request.version else ""
        raise HTTPException(404, detail=f"definition '{request.definition_key}'{label} not found")
    simulation_id = f"sim-{uuid.uuid4()}"
    inp = ServiceTaskInput(
        operator=TWIN_SIMULATE_ACTIVITY,
        params=params,
        instance_id=simulation_id,
        definition_key=request.definition_key,
        element_id="",
        task_id=simulation_id,
        tenant=user.tenant,
    )
    await temporal.start_workflow(
        SIMULATION_WORKFLOW, inp, id=simulation_id, task_queue=TWIN_TASK_QUEUE,
        memo={"tenant": user.tenant, "definition_key": request.definition_key, "requested_by": user.subject},
    )  # fmt: skip
    return SimulationAccepted(id=simulation_id, status="running")


async def _visible(
    temporal: TemporalDep, simulation_id: str, tenant: str | None
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription, Mapping[str, Any]]:
    handle = temporal.get_workflow_handle(simulation_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, detail=f"simulation '{simulation_id}' not found") from None
        raise
    memo = await description.memo()
    if description.workflow_type != SIMULATION_WORKFLOW or (tenant is not None and memo.get("tenant") != tenant):
        raise HTTPException(404, detail=f"simulation '{simulation_id}' not found")
    return handle, description, memo


@router.get("/twin/simulations/{simulation_id}", responses=responses(404))
async def get_simulation(simulation_id: SimulationId, user: AnyUser, temporal: TemporalDep) -> SimulationPublic:
    """Status, progress while it runs, and the results (cycle-time percentiles with confidence
    intervals, throughput, utilisation and queues per resource, the bottleneck, SLA breach
    probability, and the calibration's fits) once it has completed."""
    handle, description, memo = await _visible(temporal, simulation_id, user.tenant)
    found = status_name(description.status)
    view = SimulationPublic(
        id=simulation_id, definition_key=str(memo.get("definition_key")), status=found,
        requested_by=memo.get("requested_by"), progress=None,
    )  # fmt: skip
    if view.status == "running":
        for pending in description.raw_description.pending_activities:
            if pending.heartbeat_details.payloads:
                [details] = await temporal.data_converter.decode(pending.heartbeat_details.payloads)
                view.progress, view.phase = details.get("progress"), details.get("phase")
            elif pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
                view.progress, view.phase = 0.0, "queued"
            if pending.last_failure.message:
                view.error = pending.last_failure.message
    elif view.status == "completed":
        view.progress, view.result = 1.0, await handle.result()
    elif view.status == "failed":
        try:
            await handle.result()
        except Exception as err:  # the workflow's failure, with the activity's cause under it
            cause = getattr(err, "cause", None)
            view.error = str(getattr(cause, "cause", None) or cause or err)
    return view


@router.get(
    "/twin/simulations/{simulation_id}/plots/{name}.svg",
    response_class=Response,
    responses={
        **responses(404, 409, e409="The simulation has not completed"),
        200: {"content": {"image/svg+xml": {}}, "description": "the plot"},
    },
)
async def get_plot(
    simulation_id: SimulationId, name: Literal["cycle-time", "utilisation"], user: AnyUser, temporal: TemporalDep
) -> Response:
    """`cycle-time`: the histogram of cycle times; `utilisation`: utilisation per resource."""
    handle, description, _ = await _visible(temporal, simulation_id, user.tenant)
    if description.status != WorkflowExecutionStatus.COMPLETED:
        raise HTTPException(409, detail=f"simulation '{simulation_id}' has not completed")
    result = await handle.result()
    return Response(_PLOTS[name](result["simulation"]), media_type="image/svg+xml")


@router.post("/twin/simulations/{simulation_id}/cancel", status_code=202, responses=responses(404, 409))
async def cancel_simulation(
    simulation_id: SimulationId, user: OperatorUser, temporal: TemporalDep
) -> SimulationAccepted:
    """Stop a running simulation (the pool stops at its next progress check)."""
    handle, description, _ = await _visible(temporal, simulation_id, user.tenant)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise HTTPException(409, detail=f"simulation '{simulation_id}' is not running")
    await handle.cancel()
    return SimulationAccepted(id=simulation_id, status="cancelling")
