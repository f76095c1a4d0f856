from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from api.deps import AnyUser, SessionDep
from api.errors import responses
from api.schemas import DB_INT_MAX, DefinitionPublic, DefinitionVersionPublic, DefinitionVersions
from bpmn import forms
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


@router.get("/definitions/{key}/versions/{version}/files", responses=responses(404))
def list_definition_files(
    key: str, version: Annotated[int, Path(ge=1, le=DB_INT_MAX)], user: AnyUser, session: SessionDep
) -> list[str]:
    """The names of the files deployed as this version, the main BPMN file first, then what it needs
    (called processes, decision tables, forms): what to deploy again with an edited copy of it."""
    found = definitions.get(session, key=key, version=version, tenant=user.tenant)
    if found is None:
        raise HTTPException(404, detail=f"definition '{key}' version {version} not found")
    files = definitions.files(session, key=key, version=version)
    return [found.main_file, *sorted(name for name in files if name != found.main_file)]


@router.get(
    "/definitions/{key}/versions/{version}/files/{name}",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}, "application/json": {}}, "description": "the file"},
        **responses(404),
    },
)
def get_definition_file(
    key: str, version: Annotated[int, Path(ge=1, le=DB_INT_MAX)], name: str, user: AnyUser, session: SessionDep
) -> Response:
    found = definitions.get(session, key=key, version=version, tenant=user.tenant)
    files = definitions.files(session, key=key, version=version) if found is not None else {}
    if name not in files:
        raise HTTPException(404, detail=f"definition '{key}' version {version} has no file '{name}'")
    media = "application/json" if forms.is_form_file(name) else "application/xml"
    return Response(files[name], media_type=media)
