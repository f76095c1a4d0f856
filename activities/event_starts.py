"""Starting instances on an event the platform itself delivers (a signal broadcast, a message an
instance sends), with an instance id the caller derives from the event: a retried activity names the
same instance, so Temporal (one workflow per id) and the index (one row per id) start and index it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.started_instances import index_started
from bpmn.definitions import start_input
from store import definitions
from store.messages import Starter
from workflows.contracts import PROCESS_WORKFLOW, ProcessInput


class EventStarts:
    def __init__(self, client: Client, session_factory: sessionmaker[Session], engine_queue: str) -> None:
        self._client = client
        self._session_factory = session_factory
        self._engine_queue = engine_queue

    async def start(
        self,
        starter: Starter,
        *,
        instance_id: str,
        variables: dict[str, Any],
        actor: str,
        business_key: str | None = None,
        start_message: str | None = None,
        start_signal: str | None = None,
    ) -> bool:
        """Start (once) an instance of the starter's version on the event. False if it is gone."""
        requested_at = datetime.now(UTC)  # before the instance's own first entry, as for POST /instances

        def load() -> ProcessInput | None:
            with self._session_factory() as session:
                found = definitions.get(session, key=starter.key, version=starter.version)
                if found is None:
                    return None
                files = definitions.files(session, key=found.key, version=found.version)
            return start_input(
                instance_id=instance_id, key=found.key, version=found.version, digest=found.hash, files=files,
                variables=variables, business_key=business_key, started_by=actor, start_message=start_message,
                start_signal=start_signal, tenant=found.tenant, feel=found.feel,
            )  # fmt: skip

        started = await asyncio.to_thread(load)
        if started is None:
            return False
        with contextlib.suppress(WorkflowAlreadyStartedError):  # an earlier attempt started it
            await self._client.start_workflow(
                PROCESS_WORKFLOW,
                started,
                id=instance_id,
                task_queue=self._engine_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        event = {"signal": start_signal} if start_signal is not None else {"message": start_message}
        await asyncio.to_thread(
            index_started, self._session_factory, started, requested_at=requested_at, actor=actor,
            data={**event, "business_key": business_key},
        )  # fmt: skip
        return True
