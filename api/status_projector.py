"""Copies instance closures from Temporal's visibility store into the SQL instance index.

Writing the status from the workflow would add a history event to every instance (the engine
benchmark counts each one); Temporal already indexes closures, so a small loop here mirrors them
for filtered, paginated listing. Several API replicas may run it: the updates are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client, WorkflowExecutionStatus

from store import instances
from workflows.contracts import PROCESS_WORKFLOW

log = logging.getLogger("aimatrix.status")

CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "cancelled",
}
# Visibility is eventually consistent: look back a little past the newest closure already seen.
_OVERLAP = timedelta(seconds=30)


class StatusProjector:
    def __init__(self, client: Client, session_factory: sessionmaker[Session], interval: float) -> None:
        self._client = client
        self._session_factory = session_factory
        self._interval = interval
        self._since: datetime | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("instance status sync failed; retrying", exc_info=True)
            await asyncio.sleep(self._interval)

    async def sync_once(self) -> int:
        query = f"WorkflowType = '{PROCESS_WORKFLOW}' AND ExecutionStatus != 'Running'"
        if self._since is not None:
            query += f" AND CloseTime > '{(self._since - _OVERLAP).isoformat()}'"
        closures: dict[str, tuple[str, datetime | None]] = {}
        newest = self._since
        async for execution in self._client.list_workflows(query):
            status = CLOSED_STATUS.get(execution.status) if execution.status else None
            if status is None:
                continue  # continued-as-new: the chain goes on under the same id
            closures[execution.id] = (status, execution.close_time)
            if execution.close_time and (newest is None or execution.close_time > newest):
                newest = execution.close_time
        changed = await run_in_threadpool(self._record, closures) if closures else 0
        self._since = newest or datetime.now(UTC) - _OVERLAP
        return changed

    def _record(self, closures: dict[str, tuple[str, datetime | None]]) -> int:
        with self._session_factory.begin() as session:
            return instances.record_closed(session, closures=closures)
