"""The smallest workflow that calls the gpu pool: one `gpu.classify` activity, as a service task would.

Used by `benchmarks.bench_inference --temporal` to measure the pool through Temporal without the
BPMN engine's own cost in the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workers.gpu.contracts import GPU_CLASSIFY_ACTIVITY
    from workflows.contracts import ServiceTaskInput

BENCH_CLASSIFY_WORKFLOW = "BenchClassifyWorkflow"
BENCH_WORKFLOW_QUEUE = "bench-inference"


@dataclass
class BenchClassifyInput:
    task_queue: str  # the gpu worker to call (batching on or off)
    params: dict[str, Any] = field(default_factory=dict)


@workflow.defn(name=BENCH_CLASSIFY_WORKFLOW)
class BenchClassifyWorkflow:
    @workflow.run
    async def run(self, inp: BenchClassifyInput) -> dict[str, Any]:
        info = workflow.info()
        result: dict[str, Any] = await workflow.execute_activity(
            GPU_CLASSIFY_ACTIVITY,
            ServiceTaskInput(GPU_CLASSIFY_ACTIVITY, inp.params, info.workflow_id, "bench", "classify", "t"),
            task_queue=inp.task_queue,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=30),
            result_type=dict,
        )
        return result
