"""Who the caller is, as the API sees them: what the web console shows and hides buttons by."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser
from api.schemas import Me

router = APIRouter(tags=["auth"])


@router.get("/me")
def me(user: CurrentUser) -> Me:
    return Me(subject=user.subject, roles=sorted(user.roles), groups=sorted(user.groups), tenant=user.tenant)
