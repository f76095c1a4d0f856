"""TimerStartWorkflow: what a definition's Temporal Schedule starts each time its timer start event
is due. One activity starts the instance (an id derived from this run's, so a retried activity
starts it once) and indexes it; the process itself runs as ProcessWorkflow, as any other instance.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import START_SCHEDULED_ACTIVITY, TIMER_START_WORKFLOW, ScheduledStart, TimerStartInput


@workflow.defn(name=TIMER_START_WORKFLOW)
class TimerStartWorkflow:
    @workflow.run
    async def run(self, inp: TimerStartInput) -> str:
        instance_id: str = await workflow.execute_activity(
            START_SCHEDULED_ACTIVITY,
            ScheduledStart(inp.definition_key, inp.element_id, inp.tenant, workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=30),
            result_type=str,
        )
        return instance_id
