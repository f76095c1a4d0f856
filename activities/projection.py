"""The inbox, incident and audit projections, written by activities of the engine worker."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from store import audit, incidents, messages, tasks
from workflows.contracts import AUDIT_ACTIVITY, SYNC_TASKS_ACTIVITY, AuditBatch, SyncTasksInput


class ProjectionActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name=SYNC_TASKS_ACTIVITY)
    async def sync_tasks(self, update: SyncTasksInput) -> None:
        # SQLAlchemy is synchronous: keep the event loop (and other activities) free.
        await asyncio.to_thread(self._sync, update)

    def _sync(self, update: SyncTasksInput) -> None:
        with self._session_factory.begin() as session:
            tasks.sync(session, update=update)
            incidents.sync(session, update=update)
            messages.sync(session, update=update)
            records = audit.from_entries(update.instance_id, update.definition_key, update.audit, update.tenant)
            audit.append(session, records=records)

    @activity.defn(name=AUDIT_ACTIVITY)
    async def write_audit(self, batch: AuditBatch) -> None:
        await asyncio.to_thread(self._write_audit, batch)

    def _write_audit(self, batch: AuditBatch) -> None:
        with self._session_factory.begin() as session:
            records = audit.from_entries(batch.instance_id, batch.definition_key, batch.entries, batch.tenant)
            audit.append(session, records=records)
