"""A call activity's called instance: before its caller starts it as a child workflow, which deployed
version it runs (bpmn/call_activities.py's bindings) and what data it starts with; once it runs, its
row in the instance index, naming its caller. The called instance writes that row itself, as its first
step: a row then always has a workflow behind it (a caller cancelled between the two leaves none).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.started_instances import index_started
from bpmn import call_activities
from bpmn.definitions import MessageStartOnly, load_process, start_input
from store import definitions
from store.definitions import StoredDefinition
from workflows.contracts import (
    INDEX_CALLED_ACTIVITY,
    MODEL_ERROR,
    PREPARE_CALL_ACTIVITY,
    CalledInstanceIndex,
    PrepareCallInput,
    ProcessInput,
)


class CalledInstances:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name=PREPARE_CALL_ACTIVITY)
    async def prepare_call(self, inp: PrepareCallInput) -> ProcessInput:
        return await asyncio.to_thread(self._input, inp)

    @activity.defn(name=INDEX_CALLED_ACTIVITY)
    async def index_called(self, inp: CalledInstanceIndex) -> None:
        """Idempotent (index_started): a retried activity adds nothing."""
        caller = inp.parent
        await asyncio.to_thread(
            index_started, self._session_factory, inp, requested_at=activity.info().started_time,
            actor=f"instance/{caller.instance_id}",
            data={"called_by": {"instance_id": caller.instance_id, "element_id": caller.element_id}},
        )  # fmt: skip

    def _input(self, inp: PrepareCallInput) -> ProcessInput:
        with self._session_factory() as session:
            found = _resolve(session, inp)
            files = definitions.files(session, key=found.key, version=found.version)
        process = load_process(files, found.key, found.hash, feel=found.feel)
        try:
            variables = call_activities.input_variables(process.spec, inp.variables)
            started = start_input(
                instance_id=inp.instance_id, key=found.key, version=found.version, digest=found.hash, files=files,
                variables=variables, business_key=inp.business_key, started_by=f"instance/{inp.caller.instance_id}",
                tenant=found.tenant, feel=found.feel, history_limit=inp.history_limit,
            )  # fmt: skip
        except (KeyError, MessageStartOnly) as err:
            message = err.args[0] if isinstance(err, KeyError) else f"it starts only {err}"
            raise _refused(f"process '{found.key}' version {found.version} cannot be called: {message}") from None
        started.parent = inp.caller
        return started


def _resolve(session: Session, inp: PrepareCallInput) -> StoredDefinition:
    key = inp.called_key
    if inp.binding == "version":
        found = definitions.get(session, key=key, version=inp.called_version, tenant=inp.tenant)
        if found is None:
            raise _refused(f"process '{key}' has no version {inp.called_version} (the call pins it)")
        return found
    if inp.binding == "deployment":
        # the version whose main file is the one deployed with the caller (read here: the caller's
        # files need not travel through its history with every call)
        caller_files = definitions.files(session, key=inp.caller_key, version=inp.caller_version)
        for candidate in reversed(definitions.versions(session, key=key, tenant=inp.tenant)):
            if caller_files.get(candidate.main_file) == _main_text(session, candidate):
                return candidate
        raise _refused(f"process '{key}' was not deployed with '{inp.caller_key}' version {inp.caller_version}")
    found = definitions.get(session, key=key, tenant=inp.tenant)
    if found is None:
        raise _refused(f"process '{key}' is not deployed")
    return found


def _main_text(session: Session, found: StoredDefinition) -> str:
    return definitions.files(session, key=found.key, version=found.version)[found.main_file]


def _refused(message: str) -> ApplicationError:
    # the model's or the deployments' fault: an incident on the call activity, not a retry loop
    return ApplicationError(message, type=MODEL_ERROR, non_retryable=True)
