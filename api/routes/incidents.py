from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from api.deps import AnyUser, OperatorUser, StateDep, TemporalDep
from api.errors import responses
from api.schemas import DB_INT_MAX, IncidentPublic, IncidentRetry
from api.updates import execute_update
from store import audit, incidents
from workflows.contracts import (
    RETRY_INCIDENT_UPDATE,
    ProcessState,
    RetryIncidentInput,
)

router = APIRouter(tags=["incidents"])


def _public(view: incidents.IncidentView) -> IncidentPublic:
    return IncidentPublic(
        id=view.id, instance_id=view.instance_id, element_id=view.element_id, message=view.message,
        error_type=view.error_type, state=view.state, created_at=view.created_at,
    )  # fmt: skip


@router.get("/incidents")
def list_incidents(
    user: AnyUser,
    state: StateDep,
    instance_id: str | None = None,
    status: Literal["open", "resolved"] | None = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[IncidentPublic]:
    """Service tasks whose retries are exhausted, waiting for an operator (open by default)."""
    with state.session_factory() as session:
        rows = incidents.list_incidents(
            session, instance_id=instance_id, state=status, limit=limit, offset=offset, tenant=user.tenant
        )
    return [_public(row) for row in rows]


@router.post("/incidents/{incident_id}/retry", responses=responses(404, 409, e409="The incident is no longer open"))
async def retry_incident(
    incident_id: str, body: IncidentRetry, user: OperatorUser, state: StateDep, temporal: TemporalDep
) -> IncidentPublic:
    """Run the failed service task again, optionally after changing variables it reads."""

    def load() -> incidents.IncidentView | None:
        with state.session_factory() as session:
            return incidents.get(session, incident_id=incident_id, tenant=user.tenant)

    view = await run_in_threadpool(load)
    if view is None:
        raise HTTPException(404, detail=f"incident '{incident_id}' not found")
    handle = temporal.get_workflow_handle(view.instance_id)
    await execute_update(
        handle,
        RETRY_INCIDENT_UPDATE,
        RetryIncidentInput(incident_id, body.variables, user.subject),
        result_type=ProcessState,
        subject=f"incident '{incident_id}'",
    )

    def record() -> None:
        with state.session_factory.begin() as session:
            audit.append(session, records=[audit.api_operation(
                "incident.retry_requested", actor=user.subject, instance_id=view.instance_id,
                definition_key=view.definition_key, data={"incident": incident_id, "variables": body.variables},
                tenant=view.tenant,
            )])  # fmt: skip

    await run_in_threadpool(record)
    refreshed = await run_in_threadpool(load)
    return _public(refreshed or view)
