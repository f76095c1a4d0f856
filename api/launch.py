"""Starting an instance: shared by POST /instances and by messages that start processes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.state import AppState
from bpmn.definitions import MessageStartOnly, start_input
from bpmn.operators import UnknownOperatorError
from store import audit, definitions, instances
from workflows.contracts import PROCESS_WORKFLOW

# Instance ids of idempotent starts are uuid5 in this namespace over (tenant, caller, key): a retry
# names the same instance, so Temporal (one workflow per id) and the index (one row per id) dedupe it.
_IDEMPOTENT_STARTS = uuid.UUID("5f0c7a52-4b7e-4f0e-9a3c-2d1f6c8b9e41")


@dataclass(frozen=True)
class Launched:
    instance_id: str
    key: str
    version: int
    replayed: bool = False  # an earlier request with the same idempotency key started it


def instance_id_for(idempotency_key: str | None, *, actor: str, tenant: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_IDEMPOTENT_STARTS, "\x00".join((tenant or "", actor, idempotency_key))))


async def launch(
    state: AppState,
    temporal: Client,
    *,
    key: str,
    version: int | None,
    variables: dict[str, Any],
    business_key: str | None,
    actor: str,
    tenant: str | None,
    start_message: str | None = None,
    idempotency_key: str | None = None,
) -> Launched:
    """Start an instance of `key` (the latest version unless `version`), on `start_message` if given.

    404: no such definition visible to a caller of `tenant`; 409: it cannot start this way (only
    message start events, or an operator this API process does not know), or `idempotency_key`
    already started an instance of another definition. The instance belongs to the definition's tenant.

    With an `idempotency_key`, a retry (the answer was lost, the API died half-way) starts nothing
    new: it finishes what the first request left undone and returns the same instance.
    """
    instance_id = instance_id_for(idempotency_key, actor=actor, tenant=tenant)
    if idempotency_key is not None:
        existing = await run_in_threadpool(_existing, state, instance_id)
        if existing is not None:
            if existing.key != key:
                raise HTTPException(
                    409, detail=f"Idempotency-Key already started an instance of '{existing.key}', not '{key}'"
                )
            return existing

    def load() -> tuple[int, str, dict[str, str], str | None, bool]:
        with state.session_factory() as session:
            found = definitions.get(session, key=key, version=version, tenant=tenant)
            if found is None:
                label = f" version {version}" if version else ""
                raise HTTPException(404, detail=f"definition '{key}'{label} not found")
            files = definitions.files(session, key=found.key, version=found.version)
            return found.version, found.hash, files, found.tenant, found.feel

    found_version, digest, files, owner, feel = await run_in_threadpool(load)
    requested_at = datetime.now(UTC)  # the request comes before the instance's own first entry
    try:
        inp = await run_in_threadpool(
            lambda: start_input(
                instance_id=instance_id, key=key, version=found_version, digest=digest, files=files,
                variables=variables, business_key=business_key, started_by=actor, start_message=start_message,
                tenant=owner, feel=feel, history_limit=state.settings.history_limit,
            )
        )  # fmt: skip
    except MessageStartOnly as how:
        raise HTTPException(409, detail=f"definition '{key}' starts only {how}") from None
    except UnknownOperatorError as err:
        # deployed while a pool existed that this API process does not know (configuration drift)
        raise HTTPException(409, detail=f"definition '{key}' cannot start here: {err}") from None
    replayed = False
    try:
        await temporal.start_workflow(
            PROCESS_WORKFLOW,
            inp,
            id=instance_id,
            task_queue=state.settings.engine_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        if idempotency_key is None:
            raise  # a uuid4 collision: never
        replayed = True  # the first request started it and died before indexing it: index it now

    def record() -> None:
        with state.session_factory.begin() as session:
            if replayed and instances.get(session, instance_id=instance_id) is not None:
                return  # a concurrent retry indexed it meanwhile
            instances.record_start(
                session, instance_id=instance_id, key=key, version=found_version, business_key=business_key,
                started_by=actor, tenant=owner,
            )  # fmt: skip
            data: dict[str, Any] = {"version": found_version, "business_key": business_key}
            if start_message is not None:
                data["message"] = start_message
            audit.append(session, records=[audit.api_operation(
                "instance.start_requested", actor=actor, instance_id=instance_id, definition_key=key, data=data,
                at=requested_at, tenant=owner,
            )])  # fmt: skip

    try:
        await run_in_threadpool(record)
    except IntegrityError:
        if idempotency_key is None:
            raise
        replayed = True  # a concurrent retry of the same request indexed it first
    return Launched(instance_id, key, found_version, replayed)


def _existing(state: AppState, instance_id: str) -> Launched | None:
    with state.session_factory() as session:
        row = instances.get(session, instance_id=instance_id)
        return Launched(row.id, row.definition_key, row.version, replayed=True) if row else None
