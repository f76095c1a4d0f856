"""Task specs that hand work to Temporal instead of doing it inside the engine pass."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter
from SpiffWorkflow.spiff.specs.defaults import ScriptTask, ServiceTask


class ExternalServiceTask(ServiceTask):
    """A service task whose work runs as a Temporal activity on the operator's pool.

    `_execute` returns None, which leaves the Spiff task STARTED: the workflow sees it, starts the
    activity, and completes the task with the result. Nothing is called during the engine pass,
    so engine passes stay pure and replayable.
    """

    def __init__(
        self,
        wf_spec: Any,
        bpmn_id: str,
        *,
        output_mappings: list[tuple[str, str]] | None = None,
        merge_result: bool = False,
        activity_options: dict[str, float | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        # Camunda 8 style: `zeebe:output source="=expr" target="var"` evaluated over the result.
        self.output_mappings = [tuple(m) for m in (output_mappings or [])]
        # Camunda 8 merges a job's result variables into the process when no mapping is given.
        self.merge_result = merge_result
        # OperatorRoute fields this task overrides (bpmn/activity_options.py): timeouts, backoff
        self.activity_options = dict(activity_options or {})

    def _execute(self, task: Any) -> None:
        return None


class MessagePublishTask(ExternalServiceTask):
    """Sends a BPMN message through the platform (the `message.publish` operator, params `name`,
    `correlation_key`, `variables`): to the instances waiting for it and the processes it starts.
    Like a service task it waits, STARTED, until the message is delivered; one that reaches nobody is
    retried, then becomes an incident on the element. Its receipt is in the audit history, not the data.
    """


class MessageSendTask(MessagePublishTask):
    """A send task."""


class MessageThrowEvent(MessagePublishTask):
    """A message intermediate throw event."""


class MessageEndEvent(MessagePublishTask):
    """A message end event: it sends, then ends its path."""


class ExternalServiceTaskConverter(ServiceTaskConverter):
    def to_dict(self, spec: ExternalServiceTask) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct["output_mappings"] = [list(m) for m in spec.output_mappings]
        dct["merge_result"] = spec.merge_result
        dct["activity_options"] = dict(spec.activity_options)
        return dct


class SandboxedScriptTask(ScriptTask):
    """A script task whose script runs in the sandbox pool's resource-limited child processes.

    Like ExternalServiceTask, `_execute` returns None (the task stays STARTED) and the workflow runs
    the script as an activity. A script engine with `inline_scripts` set runs it here instead: the
    in-memory reference runs, and instances whose recorded history ran scripts inline.
    """

    def _execute(self, task: Any) -> bool | None:
        if getattr(task.workflow.script_engine, "inline_scripts", True):
            result: bool | None = super()._execute(task)
            return result
        return None
