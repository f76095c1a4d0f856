"""The edge pool's activities: `edge.classify`, `edge.embed`, `edge.similarity`.

The same operations, parameters and checks as the gpu pool's (a task can move between the pools
unchanged: that is what the fallback does), under the edge names; every result also names the site
whose worker produced it.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from workers.gpu.activities import GpuActivities
from workers.gpu.service import InferenceService
from workflows.contracts import (
    EDGE_CLASSIFY_ACTIVITY,
    EDGE_EMBED_ACTIVITY,
    EDGE_SIMILARITY_ACTIVITY,
    ServiceTaskInput,
)


class EdgeActivities(GpuActivities):
    def __init__(self, service: InferenceService, site: str) -> None:
        super().__init__(service)
        self.site = site

    @activity.defn(name=EDGE_CLASSIFY_ACTIVITY)
    async def classify(self, inp: ServiceTaskInput) -> dict[str, Any]:
        return {**await super().classify(inp), "site": self.site}

    @activity.defn(name=EDGE_EMBED_ACTIVITY)
    async def embed(self, inp: ServiceTaskInput) -> dict[str, Any]:
        return {**await super().embed(inp), "site": self.site}

    @activity.defn(name=EDGE_SIMILARITY_ACTIVITY)
    async def similarity(self, inp: ServiceTaskInput) -> dict[str, Any]:
        return {**await super().similarity(inp), "site": self.site}
