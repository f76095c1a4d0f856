"""TwinSimulationWorkflow: one simulation requested through the API, run by the twin pool.

A workflow rather than a bare activity so that the request is durable (Temporal keeps it, its
progress and its result; the API needs no table of its own) and cancellable. It runs on the twin
pool's own queue, next to its activity. Deterministic: it only schedules the activity.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import SIMULATION_WORKFLOW, TWIN_SIMULATE_ACTIVITY, TWIN_TASK_QUEUE, ServiceTaskInput


@workflow.defn(name=SIMULATION_WORKFLOW)
class TwinSimulationWorkflow:
    @workflow.run
    async def run(self, inp: ServiceTaskInput) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            TWIN_SIMULATE_ACTIVITY,
            inp,
            task_queue=TWIN_TASK_QUEUE,
            start_to_close_timeout=timedelta(hours=1),
            # short: the SDK sends heartbeats (and so learns of a cancellation) every 0.8 x this
            heartbeat_timeout=timedelta(seconds=5),
            # a bad request fails at once (non-retryable); a worker that died is retried once
            retry_policy=RetryPolicy(maximum_attempts=2),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return result
