"""The inbox projection, written by an activity of the engine worker."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from store import incidents, tasks
from workflows.contracts import SYNC_TASKS_ACTIVITY, SyncTasksInput


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
