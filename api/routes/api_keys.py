"""API keys: created by an admin, shown once, listed without the key, revoked at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.auth import ROLE_NAMES
from api.deps import AdminUser, StateDep
from api.errors import responses
from store import api_keys, audit
from store.models import ApiKey

router = APIRouter(tags=["api-keys"])

GroupName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class ApiKeyCreate(BaseModel):
    # A misspelt field ("role") must not silently create a key without the scope it was meant to have.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
    roles: list[str] = Field(min_length=1, max_length=20)
    groups: list[GroupName] = Field(default_factory=list, max_length=100)
    tenant: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = [role for role in roles if role not in ROLE_NAMES]
        if unknown:
            names = ", ".join(f"'{role[:50]}'" for role in unknown)
            raise ValueError(f"unknown role {names}; the roles are {', '.join(sorted(ROLE_NAMES))}")
        return sorted(set(roles))


class _ApiKeyFields(BaseModel):
    id: int
    name: str
    roles: list[str]
    groups: list[str]
    tenant: str | None
    created_at: datetime


class ApiKeyCreated(_ApiKeyFields):
    key: str = Field(description="The key itself; shown only in this answer, stored only as a digest")


class ApiKeyPublic(_ApiKeyFields):
    revoked_at: datetime | None


def _fields(row: ApiKey) -> dict[str, object]:
    return {
        "id": row.id,
        "name": row.name,
        "roles": api_keys.role_names(row),
        "groups": list(row.groups),
        "tenant": row.tenant,
        "created_at": _utc(row.created_at),
    }


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC, and answers say so whatever the database.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    responses=responses(409, e409="A key with this name exists (possibly revoked)"),
)
def create_api_key(body: ApiKeyCreate, user: AdminUser, state: StateDep) -> ApiKeyCreated:
    """Create a key; the answer is the only time the key itself is shown. An admin of a tenant creates
    keys of that tenant only (omit `tenant`, or give its own)."""
    tenant = body.tenant
    if user.tenant is not None:
        if tenant not in (None, user.tenant):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail="an admin of a tenant creates keys of that tenant only"
            )
        tenant = user.tenant
    key = api_keys.generate()
    try:
        # Committed before answering: the caller may use the key the moment it has it.
        with state.session_factory.begin() as session:
            row = api_keys.create(
                session, name=body.name, key=key, subject=body.name,
                roles=body.roles, groups=body.groups, tenant=tenant,
            )  # fmt: skip
            fields = _fields(row)
            audit.append(
                session,
                records=[
                    audit.api_operation(
                        "api_key.created", actor=user.subject,
                        data={"name": body.name, "roles": body.roles, "groups": body.groups, "tenant": tenant},
                        tenant=user.tenant,
                    )
                ],
            )  # fmt: skip
    except api_keys.NameTakenError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"an API key named '{body.name}' exists already (names are never reused)"
        ) from None
    return ApiKeyCreated.model_validate({**fields, "key": key})


@router.get("/api-keys")
def list_api_keys(
    user: AdminUser,
    state: StateDep,
    include_revoked: Annotated[bool, Query(description="also list revoked keys")] = False,
) -> list[ApiKeyPublic]:
    with state.session_factory() as session:
        rows = api_keys.list_all(session, include_revoked=include_revoked, tenant=user.tenant)
        return [
            ApiKeyPublic.model_validate(
                {**_fields(row), "revoked_at": _utc(row.revoked_at) if row.revoked_at else None}
            )
            for row in rows
        ]


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404, e404="No key with this id visible to the caller"),
)
def revoke_api_key(key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], user: AdminUser, state: StateDep) -> None:
    """Revoke a key: the next request with it gets 401. Revoking a revoked key changes nothing."""
    with state.session_factory.begin() as session:
        row = api_keys.revoke(session, key_id=key_id, tenant=user.tenant)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"API key {key_id} not found")
        record = audit.api_operation("api_key.revoked", actor=user.subject, data={"id": key_id}, tenant=user.tenant)
        audit.append(session, records=[record])
