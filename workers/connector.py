"""The connector pool: plain integration operators such as `http.request`."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.worker import Worker

from activities.http_connector import HttpConnector
from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from workflows.contracts import CONNECTOR_TASK_QUEUE


def build_worker(client: Client, connector: HttpConnector, *, task_queue: str = CONNECTOR_TASK_QUEUE) -> Worker:
    return Worker(client, task_queue=task_queue, activities=[connector.request])


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s connector %(levelname)s %(message)s")
    settings = get_settings()
    client = await connect(settings)
    connector = HttpConnector()
    try:
        logging.info("connector worker polling %s on %s", CONNECTOR_TASK_QUEUE, settings.temporal_address)
        await build_worker(client, connector).run()
    finally:
        await connector.aclose()


if __name__ == "__main__":
    asyncio.run(main())
