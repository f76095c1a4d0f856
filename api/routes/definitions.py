from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from api.deps import AnyUser, SessionDep
from api.errors import responses
from api.schemas import DB_INT_MAX, DefinitionPublic, DefinitionVersionPublic, DefinitionVersions
from store import definitions

router = APIRouter(tags=["definitions"])


@router.get("/definitions")
def list_definitions(user: AnyUser, session: SessionDep) -> list[DefinitionPublic]:
    """The latest version of every deployed process (of the caller's tenant)."""
    return [
        DefinitionPublic(key=d.key, version=d.version, hash=d.hash, name=d.name)
        for d in definitions.list_latest(session, tenant=user.tenant)
    ]


@router.get("/definitions/{key}", responses=responses(404))
def get_definition(key: str, user: AnyUser, session: SessionDep) -> DefinitionVersions:
    versions = definitions.versions(session, key=key, tenant=user.tenant)
    if not versions:
        raise HTTPException(404, detail=f"definition '{key}' not found")
    return DefinitionVersions(
        key=key,
        name=versions[-1].name,
        versions=[
            DefinitionVersionPublic(key=v.key, version=v.version, hash=v.hash, name=v.name, deployed_at=v.deployed_at)
            for v in versions
        ],
    )


@router.get(
    "/definitions/{key}/versions/{version}/xml",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "the main BPMN file"}, **responses(404)},
)
def get_definition_xml(
    key: str, version: Annotated[int, Path(ge=1, le=DB_INT_MAX)], user: AnyUser, session: SessionDep
) -> Response:
    found = definitions.get(session, key=key, version=version, tenant=user.tenant)
    if found is None:
        raise HTTPException(404, detail=f"definition '{key}' version {version} not found")
    files = definitions.files(session, key=key, version=version)
    return Response(files[found.main_file], media_type="application/xml")
