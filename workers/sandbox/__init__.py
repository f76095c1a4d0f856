"""The sandbox pool: runs script tasks' scripts in resource-limited child processes (`sandbox.script`)."""

from __future__ import annotations

import asyncio
import logging
import os

from temporalio.client import Client
from temporalio.worker import Worker

from activities.script_sandbox import Limits, ScriptSandbox
from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from workflows.contracts import SANDBOX_TASK_QUEUE


def build_worker(client: Client, sandbox: ScriptSandbox, *, task_queue: str = SANDBOX_TASK_QUEUE) -> Worker:
    return Worker(client, task_queue=task_queue, activities=[sandbox.script])


def limits_from_env() -> Limits:
    defaults = Limits()
    return Limits(
        wall_seconds=float(os.environ.get("AIMATRIX_SCRIPT_TIMEOUT_SECONDS", defaults.wall_seconds)),
        cpu_seconds=int(os.environ.get("AIMATRIX_SCRIPT_CPU_SECONDS", defaults.cpu_seconds)),
        memory_bytes=int(os.environ.get("AIMATRIX_SCRIPT_MEMORY_MB", defaults.memory_bytes // 2**20)) * 2**20,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(message)s")
    settings = get_settings()
    client = await connect(settings)
    sandbox = ScriptSandbox(limits_from_env())
    logging.info("sandbox worker polling %s on %s", SANDBOX_TASK_QUEUE, settings.temporal_address)
    await build_worker(client, sandbox).run()


if __name__ == "__main__":
    asyncio.run(main())
