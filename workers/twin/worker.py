"""The twin pool's worker process: `aimatrix worker twin` (or `python -m workers.twin`).

Polls the `twin` queue for `twin.simulate` (service tasks and the API's simulations) and hosts the
simulation workflow. One simulation at a time per worker: salabim keeps one default environment
per process; run more workers for more at once.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from store.db import make_engine, make_session_factory
from workers.twin.activities import TwinActivities
from workflows.contracts import TWIN_TASK_QUEUE
from workflows.simulation import TwinSimulationWorkflow

log = logging.getLogger("aimatrix.twin")


def build_worker(client: Client, session_factory: sessionmaker[Session], executor: ThreadPoolExecutor) -> Worker:
    return Worker(
        client,
        task_queue=TWIN_TASK_QUEUE,
        workflows=[TwinSimulationWorkflow],
        activities=[TwinActivities(session_factory).simulate],
        activity_executor=executor,
        max_concurrent_activities=1,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s twin %(levelname)s %(message)s")
    settings = get_settings()
    client = await connect(settings)
    # it only reads the platform database; the engine worker and the API migrate it (two processes
    # migrating one SQLite file at once race on its DDL)
    engine = make_engine(settings.resolved_database_url)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-sim") as executor:
        log.info("twin worker polling %s on %s", TWIN_TASK_QUEUE, settings.temporal_address)
        try:
            await build_worker(client, make_session_factory(engine), executor).run()
        finally:
            engine.dispose()
