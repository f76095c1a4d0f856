"""The edge pool's worker process for one site: `aimatrix worker edge --site plant-7` (or
`python -m workers.edge --site plant-7`), polling the task queue `edge.plant-7`.

Settings from the environment: AIMATRIX_EDGE_SITE (the site, when --site is not given; `local` by
default), AIMATRIX_EDGE_MODELS_DIR (int8 artifacts; built there from the registry model when
missing), AIMATRIX_GPU_MODELS (the model registry, shared with the gpu pool), AIMATRIX_EDGE_THREADS
(ONNX Runtime threads; 0 = one per core), AIMATRIX_EDGE_MAX_BATCH / AIMATRIX_EDGE_MAX_WAIT_MS
(texts per pass, 1 / 5 ms).

Why one text per pass by default: dynamic quantisation scales a pass's activations by their range
over the whole batch, padding included, so an int8 row moves with the texts it shares a pass with
(measured: cosine 0.990 between a text's row alone and in a pass of 16). A decision that depends on
what else the site was doing at that moment cannot be reproduced from the audit history; and on a
CPU, passes of 16 were only ~1.3x faster per text (BENCHMARKS.md). A site that prefers throughput
sets AIMATRIX_EDGE_MAX_BATCH.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from functools import partial
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from aimatrix.settings import get_settings
from aimatrix.temporal import connect
from workers.edge.activities import EdgeActivities
from workers.edge.artifact import ensure
from workers.edge.onnx_model import OnnxModel
from workers.gpu.batching import BatchPolicy
from workers.gpu.model import ServableModel
from workers.gpu.registry import ModelSpec
from workers.gpu.service import InferenceService
from workflows.contracts import EDGE_SITE_PATTERN, edge_task_queue

log = logging.getLogger("aimatrix.edge")
SITE_ENV = "AIMATRIX_EDGE_SITE"
DEFAULT_SITE = "local"


def load_int8(spec: ModelSpec, *, cache: Path | None = None) -> ServableModel:
    return OnnxModel(spec, ensure(spec, cache))


def edge_service(*, policy: BatchPolicy | None = None, cache: Path | None = None) -> InferenceService:
    return InferenceService(
        policy=policy or BatchPolicy(
            max_batch_size=int(os.environ.get("AIMATRIX_EDGE_MAX_BATCH", "1")),
            max_wait_ms=float(os.environ.get("AIMATRIX_EDGE_MAX_WAIT_MS", "5")),
        ),
        loader=partial(load_int8, cache=cache),
        pool="edge",
    )  # fmt: skip


def check_site(site: str) -> str:
    if re.fullmatch(EDGE_SITE_PATTERN, site) is None:
        raise ValueError(f"site {site!r}: use lower-case letters, digits, '-' and '_' (e.g. plant-7)")
    return site


def build_worker(client: Client, activities: EdgeActivities, *, max_concurrent: int = 64) -> Worker:
    return Worker(
        client,
        task_queue=edge_task_queue(activities.site),
        activities=[activities.classify, activities.embed, activities.similarity],
        max_concurrent_activities=max_concurrent,
    )


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aimatrix worker edge", description="an edge site's worker")
    parser.add_argument("--site", default=os.environ.get(SITE_ENV, DEFAULT_SITE), help="the site this worker serves")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s edge %(levelname)s %(message)s")
    try:
        site = check_site(args.site)
    except ValueError as err:
        sys.exit(str(err))
    settings = get_settings()
    client = await connect(settings)
    service = edge_service()
    try:
        try:  # the first start at a site builds the int8 artifact (seconds), before polling
            info = (await service.model()).info
            log.info("model %s int8 (%s) warm on cpu", info.name, info.revision[:19])
        except Exception:
            log.exception("the default model could not be loaded")
        log.info("edge worker of site %s polling %s on %s", site, edge_task_queue(site), settings.temporal_address)
        await build_worker(client, EdgeActivities(service, site)).run()
    finally:
        await service.aclose()
