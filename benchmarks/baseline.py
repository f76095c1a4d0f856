"""The yardstick for the engine benchmark: the same three activities, written by hand in Temporal.

`BaselineWorkflow` calls `bench.step` three times in a row with exactly the options that
`ProcessWorkflow` derives from the `bench` pool (task queue, timeouts, retry policy), so the only
difference between the two runs is the BPMN engine: parsing is cached, but every instance builds a
SpiffWorkflow, runs engine passes and reconciles tasks around each activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bpmn.operators import PoolConfig
    from workflows.contracts import ServiceTaskInput

BENCH_POOL_PREFIX = "bench"
BENCH_TASK_QUEUE = "bench"
BENCH_OPERATOR = "bench.step"
BASELINE_TASK_QUEUE = "bench-baseline"
BASELINE_WORKFLOW = "BenchBaselineWorkflow"
BASELINE_LOOP_WORKFLOW = "BenchBaselineLoopWorkflow"

# Registered as the `bench` pool before the model is validated, so both workflows read one config.
BENCH_POOL = PoolConfig(task_queue=BENCH_TASK_QUEUE)

STEPS = (("step1", "r1", 1), ("step2", "r2", 2), ("step3", "r3", 3))  # element, result variable, n


@activity.defn(name=BENCH_OPERATOR)
async def bench_step(inp: ServiceTaskInput) -> dict[str, Any]:
    """A trivial service: what is measured is orchestration, not work."""
    return {"n": inp.params.get("n"), "element": inp.element_id, "ok": True}


@dataclass
class BaselineInput:
    instance_id: str


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineWorkflow:
    @workflow.run
    async def run(self, inp: BaselineInput) -> dict[str, Any]:
        pool = BENCH_POOL
        variables: dict[str, Any] = {}
        for element_id, result_variable, n in STEPS:
            variables[result_variable] = await workflow.execute_activity(
                BENCH_OPERATOR,
                ServiceTaskInput(
                    operator=BENCH_OPERATOR,
                    params={"n": n},
                    instance_id=inp.instance_id,
                    definition_key="baseline",
                    element_id=element_id,
                    task_id=element_id,
                ),
                task_queue=pool.task_queue,
                activity_id=element_id,
                start_to_close_timeout=pool.start_to_close,
                schedule_to_close_timeout=pool.schedule_to_close,
                heartbeat_timeout=pool.heartbeat,
                retry_policy=RetryPolicy(
                    maximum_attempts=pool.max_attempts,
                    initial_interval=pool.initial_interval,
                    backoff_coefficient=pool.backoff,
                ),
                result_type=dict,
            )
        return variables


@dataclass
class BaselineLoopInput:
    total: int
    i: int = 0
    chunk: int = 1_000  # iterations per run: a hand-written loop continues as new to bound its history


@workflow.defn(name=BASELINE_LOOP_WORKFLOW)
class BaselineLoopWorkflow:
    """The hand-written equivalent of benchmarks/long_loop.bpmn: `bench.step` until the counter reaches
    `total`, continuing as new every `chunk` iterations."""

    @workflow.run
    async def run(self, inp: BaselineLoopInput) -> int:
        pool = BENCH_POOL
        i = inp.i
        for _ in range(inp.chunk):
            if i >= inp.total:
                return i
            result = await workflow.execute_activity(
                BENCH_OPERATOR,
                ServiceTaskInput(
                    operator=BENCH_OPERATOR,
                    params={"n": i + 1},
                    instance_id=workflow.info().workflow_id,
                    definition_key="baseline_loop",
                    element_id="step",
                    task_id=str(i),
                ),
                task_queue=pool.task_queue,
                start_to_close_timeout=pool.start_to_close,
                retry_policy=RetryPolicy(
                    maximum_attempts=pool.max_attempts,
                    initial_interval=pool.initial_interval,
                    backoff_coefficient=pool.backoff,
                ),
                result_type=dict,
            )
            i = int(result["n"])
        if i >= inp.total:
            return i
        workflow.continue_as_new(BaselineLoopInput(inp.total, i, inp.chunk))
