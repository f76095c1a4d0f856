"""ProcessWorkflow: the Temporal workflow that runs one BPMN process instance.

Deliberately thin: the sandbox re-imports this module for every workflow run, so the engine it
delegates to (workflows/process_engine.py) is passed through instead.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        ASSIGN_TASK_UPDATE,
        CALL_RETURNED_SIGNAL,
        COMPLETE_TASK_UPDATE,
        DELIVER_MESSAGE_UPDATE,
        DELIVER_SIGNAL_UPDATE,
        PROCESS_WORKFLOW,
        RETRY_INCIDENT_UPDATE,
        SET_VARIABLES_UPDATE,
        STATE_QUERY,
        AssignTaskInput,
        CallReturn,
        CompleteTaskInput,
        CompleteTaskResult,
        DeliverMessageInput,
        DeliverMessageResult,
        DeliverSignalInput,
        DeliverSignalResult,
        ProcessInput,
        ProcessResult,
        ProcessState,
        RetryIncidentInput,
        SetVariablesInput,
        TaskAssigned,
    )
    from workflows.process_engine import ProcessEngine


@workflow.defn(name=PROCESS_WORKFLOW)
class ProcessWorkflow:
    @workflow.init
    def __init__(self, inp: ProcessInput) -> None:
        self._engine = ProcessEngine(inp)

    @workflow.run
    async def run(self, inp: ProcessInput) -> ProcessResult:
        return await self._engine.run()

    @workflow.update(name=COMPLETE_TASK_UPDATE)
    async def complete_task(self, inp: CompleteTaskInput) -> CompleteTaskResult:
        return await self._engine.complete_task(inp)

    @complete_task.validator
    def validate_complete_task(self, inp: CompleteTaskInput) -> None:
        # Rejected here, a bad completion never reaches the history.
        self._engine.check_completion(inp)

    @workflow.update(name=ASSIGN_TASK_UPDATE)
    async def assign_task(self, inp: AssignTaskInput) -> TaskAssigned:
        return await self._engine.assign_task(inp)

    @assign_task.validator
    def validate_assign_task(self, inp: AssignTaskInput) -> None:
        self._engine.check_assignment(inp)

    @workflow.update(name=RETRY_INCIDENT_UPDATE)
    async def retry_incident(self, inp: RetryIncidentInput) -> ProcessState:
        return await self._engine.retry_incident(inp)

    @retry_incident.validator
    def validate_retry_incident(self, inp: RetryIncidentInput) -> None:
        self._engine.check_retry(inp)

    @workflow.update(name=SET_VARIABLES_UPDATE)
    async def set_variables(self, inp: SetVariablesInput) -> ProcessState:
        return await self._engine.set_variables(inp)

    @set_variables.validator
    def validate_set_variables(self, inp: SetVariablesInput) -> None:
        self._engine.check_set_variables(inp)

    @workflow.update(name=DELIVER_MESSAGE_UPDATE)
    async def deliver_message(self, inp: DeliverMessageInput) -> DeliverMessageResult:
        return await self._engine.deliver_message(inp)

    @deliver_message.validator
    def validate_deliver_message(self, inp: DeliverMessageInput) -> None:
        # a message nobody here waits for is refused before it reaches the history
        self._engine.check_message(inp)

    @workflow.update(name=DELIVER_SIGNAL_UPDATE)
    async def deliver_signal(self, inp: DeliverSignalInput) -> DeliverSignalResult:
        return await self._engine.deliver_signal(inp)

    @deliver_signal.validator
    def validate_deliver_signal(self, inp: DeliverSignalInput) -> None:
        self._engine.check_signal(inp)

    @workflow.signal(name=CALL_RETURNED_SIGNAL)
    def call_returned(self, ret: CallReturn) -> None:
        # from an instance a call activity started: it ended, or escalated
        self._engine.call_returned(ret)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> ProcessState:
        return self._engine.state()
