from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api.auth import Role
from api.deps import AuditorUser, Principal, StateDep, require_roles
from api.errors import responses
from api.schemas import DB_INT_MAX
from store import audit, instances

router = APIRouter(tags=["audit"])

HistoryReader = Annotated[Principal, Depends(require_roles(Role.AUDITOR, Role.OPERATOR))]


class AuditVerification(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    problems: list[str]


@router.get("/instances/{instance_id}/history", responses=responses(404))
def instance_history(instance_id: str, user: HistoryReader, state: StateDep) -> list[audit.AuditView]:
    """Everything recorded about one instance, in the order it happened: elements entered, completed
    and cancelled, task completions with who and what, incidents, and the API operations on it."""
    with state.session_factory() as session:
        if instances.get(session, instance_id=instance_id, tenant=user.tenant) is None:
            raise HTTPException(404, detail=f"instance '{instance_id}' not found")
        return audit.instance_history(session, instance_id=instance_id)


@router.get("/audit")
def search_audit(
    user: AuditorUser,
    state: StateDep,
    instance_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    after: Annotated[int, Query(ge=0, le=DB_INT_MAX, description="return records after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[audit.AuditView]:
    """The audit log in append order; page with `after` = the last `seq` you have."""
    with state.session_factory() as session:
        return audit.search(
            session, instance_id=instance_id, actor=actor, action=action, after=after, limit=limit, tenant=user.tenant
        )


@router.get("/audit/verify")
def verify_audit(user: AuditorUser, state: StateDep) -> AuditVerification:
    """Recompute the hash chain: any edited, deleted or reordered record is reported.

    The chain runs through every tenant's records, so checking it takes a platform-wide auditor."""
    if user.tenant is not None:
        raise HTTPException(
            403, detail="the audit chain spans every tenant: verifying it needs a key or token without a tenant"
        )
    with state.session_factory() as session:
        result = audit.verify(session)
    return AuditVerification(ok=result.ok, checked=result.checked, head_seq=result.head_seq, problems=result.problems)
