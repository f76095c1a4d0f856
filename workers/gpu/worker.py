"""The gpu pool's worker process: `aimatrix worker gpu` (or `python -m workers.gpu`).

Settings from the environment: AIMATRIX_GPU_MODELS (the model registry file),
AIMATRIX_GPU_MAX_BATCH (texts per forward pass, 32), AIMATRIX_GPU_MAX_WAIT_MS (how long a request
waits for company, 5), AIMATRIX_GPU_BATCHING (on/off) and AIMATRIX_GPU_MAX_CONCURRENT (activities
in flight, 256: they mostly wait for their pass, and more of them make fuller passes).
"""

from __future__ import annotations

import logging
import os

from temporalio.client import Client
from temporalio.worker import Worker

from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from workers.gpu.activities import GpuActivities
from workers.gpu.batching import BatchPolicy
from workers.gpu.contracts import GPU_TASK_QUEUE
from workers.gpu.service import InferenceService

log = logging.getLogger("aimatrix.gpu")


def policy_from_env() -> BatchPolicy:
    return BatchPolicy(
        max_batch_size=int(os.environ.get("AIMATRIX_GPU_MAX_BATCH", "32")),
        max_wait_ms=float(os.environ.get("AIMATRIX_GPU_MAX_WAIT_MS", "5")),
        enabled=os.environ.get("AIMATRIX_GPU_BATCHING", "on").lower() not in ("off", "0", "false", "no"),
    )


def build_worker(
    client: Client, activities: GpuActivities, *, task_queue: str = GPU_TASK_QUEUE, max_concurrent: int = 256
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        activities=[activities.classify, activities.embed, activities.similarity],
        max_concurrent_activities=max_concurrent,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gpu %(levelname)s %(message)s")
    settings = get_settings()
    client = await connect(settings)
    service = InferenceService(policy=policy_from_env())
    try:
        # Load and warm the default model before polling, so the first task does not pay for it. A
        # model that cannot load is reported and the worker still serves the others.
        try:
            served = await service.model()
            info = served.info
            log.info("model %s (%s) warm on %s as %s", info.name, info.revision[:19], info.device, info.dtype)
        except Exception:
            log.exception("the default model could not be loaded")
        log.info(
            "gpu worker polling %s on %s (batching: %s)", GPU_TASK_QUEUE, settings.temporal_address, service.policy
        )
        await build_worker(
            client, GpuActivities(service), max_concurrent=int(os.environ.get("AIMATRIX_GPU_MAX_CONCURRENT", "256"))
        ).run()
    finally:
        await service.aclose()
