from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio.from_thread
from fastapi import APIRouter, File, HTTPException, Response, UploadFile, status
from sqlalchemy.orm import Session

from api import timer_schedules
from api.deps import ModelerUser, SessionDep, StateDep
from api.errors import ModelErrorsBody, responses
from api.schemas import DefinitionPublic, DeploymentPublic
from bpmn.call_activities import CalledProcess
from bpmn.definitions import DeployableDefinition, ModelError, ModelValidationError, load_process, validate_upload
from bpmn.timer_starts import timer_starts
from bpmn.xml import XmlLimits
from store import audit, definitions

router = APIRouter(tags=["deployments"])


@router.post(
    "/deployments",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": DeploymentPublic, "description": "Every file was already deployed with this content"},
        409: {"model": ModelErrorsBody, "description": "A process id is owned by another tenant"},
        413: responses(413)[413],
        422: {
            "model": ModelErrorsBody,
            "description": "The upload is invalid: every problem, with file, element and line",
        },
    },
)
def deploy(
    user: ModelerUser,
    state: StateDep,
    session: SessionDep,
    response: Response,
    files: Annotated[list[UploadFile], File(description=".bpmn and .dmn files")],
) -> DeploymentPublic:
    limit = state.settings.max_upload_bytes
    contents: dict[str, bytes] = {}
    for upload in files:
        name = upload.filename or "upload.bpmn"
        if name in contents:
            raise HTTPException(422, detail=[_error(name, f"file name '{name}' appears twice in one deployment")])
        data = upload.file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, detail=[_error(name, f"file is larger than {limit} bytes")])
        contents[name] = data
    try:
        deployable = validate_upload(
            contents,
            XmlLimits(
                max_bytes=limit,
                max_elements=state.settings.max_xml_elements,
                max_depth=state.settings.max_xml_depth,
            ),
        )
    except ModelValidationError as err:
        raise HTTPException(422, detail=[e.__dict__ for e in err.errors]) from None
    called = _missing_calls(session, deployable, user.tenant)
    if called:
        raise HTTPException(422, detail=called)  # before anything is stored
    try:
        stored = [
            definitions.deploy(
                session,
                key=d.key,
                name=d.name,
                files=d.files,
                digest=d.hash,
                deployed_by=user.subject,
                message_starts=d.message_starts,
                signal_starts=d.signal_starts,
                tenant=user.tenant,
            )
            for d in deployable
        ]
    except definitions.KeyTaken as taken:
        # the whole upload is refused (the session's transaction rolls back): nothing half-deployed
        main_file = next(iter(next(d for d in deployable if d.key == str(taken)).files))
        message = f"process id '{taken}' is already used by another tenant: give the process another id"
        raise HTTPException(409, detail=[_error(main_file, message)]) from None
    created = [d for d in stored if d.created]
    # Timer start events: each new version's Schedule follows it. Before the commit, so that a
    # Temporal that does not answer fails the deploy (503, nothing stored) rather than half of it.
    by_key = {d.key: d for d in deployable}
    for version in created:
        deployed = by_key[version.key]
        starts = timer_starts(load_process(deployed.files, deployed.key, deployed.hash))
        anyio.from_thread.run(
            partial(
                timer_schedules.sync, state.temporal, key=version.key, tenant=version.tenant, starts=starts,
                deployed_at=version.deployed_at, task_queue=state.settings.engine_task_queue,
            )
        )  # fmt: skip
    audit.append(
        session,
        records=[
            audit.api_operation(
                "definition.deployed", actor=user.subject, definition_key=d.key,
                data={"version": d.version, "hash": d.hash, "files": sorted(contents)}, tenant=d.tenant,
            )
            for d in created
        ],
    )  # fmt: skip
    if not created:
        response.status_code = status.HTTP_200_OK
    return DeploymentPublic(
        definitions=[DefinitionPublic(key=s.key, version=s.version, hash=s.hash, name=s.name) for s in stored]
    )


def _missing_calls(
    session: Session, deployable: list[DeployableDefinition], tenant: str | None
) -> list[dict[str, object]]:
    """Call activities whose called process (or pinned version) is neither in this upload nor deployed.
    A call bound to the latest version may find a newer one at run time; it must find one now."""
    uploaded = {d.key for d in deployable}
    problems = []
    for call in {call for d in deployable for call in d.calls}:
        message = _missing(session, call, call.process_id in uploaded, tenant)
        if message is not None:
            problems.append(ModelError(call.file or "", call.element_id, call.line, message).__dict__)
    return sorted(problems, key=lambda p: (str(p["file"]), p["line"] or 0))


def _missing(session: Session, call: CalledProcess, uploaded: bool, tenant: str | None) -> str | None:
    if call.binding == "deployment":
        return None if uploaded else (
            "call activity binding 'deployment' calls the version deployed with the caller, "
            f"but process '{call.process_id}' is not in this upload"
        )  # fmt: skip
    if uploaded:
        if call.version is None:
            return None
        latest = definitions.get(session, key=call.process_id, tenant=tenant)
        exists = call.version <= (latest.version if latest else 0) + 1  # this upload makes one version at most
        return None if exists else f"calls version {call.version} of process '{call.process_id}', which does not exist"
    if definitions.get(session, key=call.process_id, version=call.version, tenant=tenant) is not None:
        return None
    what = f"version {call.version} of process" if call.version else "process"
    return f"calls {what} '{call.process_id}', which is neither in this upload nor deployed"


def _error(file: str, message: str) -> dict[str, object]:
    return {"file": file, "element_id": None, "line": None, "message": message}
