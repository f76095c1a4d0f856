"""Copies instance closures from Temporal's visibility store into the SQL instance index.

Writing the status from the workflow would add a history event to every instance (the engine
benchmark counts each one); Temporal already indexes closures, so a small loop here mirrors them
for filtered, paginated listing. Several API replicas may run it: the updates are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client, WorkflowExecutionStatus

from store import audit, instances
from workflows.contracts import PROCESS_WORKFLOW, AuditEntry, ProcessResult

log = logging.getLogger("aimatrix.status")
T = TypeVar("T")

ExecutionStatus = Literal["running", "completed", "failed", "cancelled"]
CLOSED_STATUS: dict[WorkflowExecutionStatus, ExecutionStatus] = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "cancelled",
}


def status_name(status: WorkflowExecutionStatus | None) -> ExecutionStatus:
    """A workflow's status as the API names it: running until it closes (continued-as-new runs on)."""
    return CLOSED_STATUS.get(status, "running") if status else "running"


# Visibility is eventually consistent: look back a little past the newest closure already seen.
_OVERLAP = timedelta(seconds=30)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a worker thread; on cancellation, wait for the thread before giving up.

    A cancelled await would otherwise orphan the thread while it holds a pooled connection, which
    the lifespan's `engine.dispose()` then strands (psycopg reports it as a ResourceWarning).
    """
    future = asyncio.ensure_future(run_in_threadpool(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait({future})
        raise


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
        if self._since is None:
            # First pass: closures older than the oldest instance the index has as running concern
            # no row, so a restart does not rescan every instance the namespace ever closed.
            oldest = await _in_thread(self._oldest_running)
            self._since = (oldest or datetime.now(UTC)) - _OVERLAP
        query = (
            f"WorkflowType = '{PROCESS_WORKFLOW}' AND ExecutionStatus != 'Running'"
            f" AND CloseTime > '{(self._since - _OVERLAP).isoformat()}'"
        )
        closures: dict[str, tuple[str, datetime | None]] = {}
        trails: dict[str, list[AuditEntry]] = {}
        newest = self._since
        async for execution in self._client.list_workflows(query):
            status = CLOSED_STATUS.get(execution.status) if execution.status else None
            if status is None:
                continue  # continued-as-new: the chain goes on under the same id
            closures[execution.id] = (status, execution.close_time)
            if execution.close_time and (newest is None or execution.close_time > newest):
                newest = execution.close_time
        # the overlap window sees closures again: only those the index does not know yet cost more work
        fresh = await _in_thread(self._still_running, list(closures)) if closures else []
        for instance_id in fresh:
            if closures[instance_id][0] == "completed":
                trails[instance_id] = await self._final_audit(instance_id)
        new = {instance_id: closures[instance_id] for instance_id in fresh}
        changed = await _in_thread(self._record, new, trails) if new else 0
        self._since = newest or datetime.now(UTC) - _OVERLAP
        return changed

    async def _final_audit(self, instance_id: str) -> list[AuditEntry]:
        """A completed instance's last audit entries travel in its result (no extra history event)."""
        handle = self._client.get_workflow_handle(instance_id, result_type=ProcessResult)
        result: ProcessResult = await handle.result()
        return result.audit

    def _oldest_running(self) -> datetime | None:
        with self._session_factory() as session:
            return instances.oldest_running_start(session)

    def _still_running(self, ids: list[str]) -> list[str]:
        with self._session_factory() as session:
            return instances.still_running(session, ids=ids)

    def _record(self, closures: dict[str, tuple[str, datetime | None]], trails: dict[str, list[AuditEntry]]) -> int:
        with self._session_factory.begin() as session:
            changed = instances.record_closed(session, closures=closures)
            for instance_id, entries in trails.items():
                row = instances.get(session, instance_id=instance_id)
                key, tenant = (row.definition_key, row.tenant) if row else ("", None)
                # entries already stored (an earlier pass, the overlap window) are skipped
                audit.append(session, records=audit.from_entries(instance_id, key, entries, tenant))
            return changed
