"""Call activities as instances of their own: each call starts the called process as a Temporal child
workflow (workflows/process_engine.py), instead of SpiffWorkflow's subprocess inside the caller.

The called instance has its own history, inbox tasks, audit trail and incidents, and may be a process
deployed on its own, in another upload: a call is bound to the called process's latest version (the
default, as in Camunda), to the version deployed with the caller (`deployment`), or to a pinned
version (`camunda:calledElementBinding="version"` with `camunda:calledElementVersion`).

Data goes as SpiffWorkflow's call activity moves it: the called process gets the caller's data (only
its declared data inputs, if its ioSpecification has any); the caller's data becomes the called
process's final data (only its declared data outputs are merged, if it has any).

While the caller runs the call, the Spiff task waits STARTED, as a service task waits for its activity.
Instances whose history ran calls as Spiff subprocesses replay that way: the engine sets the flag
below only for instances started with child workflows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.spiff.specs.defaults import CallActivity as SpiffCallActivity
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

CHILD_CALLS = "aimatrix_child_calls"  # attribute of the top workflow: calls start child workflows

BINDINGS = ("latest", "deployment", "version")
_NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "zeebe": "http://camunda.org/schema/zeebe/1.0",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
}
_CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"


class CallActivity(SpiffCallActivity):
    """Spiff's call activity, which waits for a child workflow where the instance runs calls so.
    (The class name stays: the twin and the audit read element types by it.)"""

    call: CalledProcess | None = None  # how it is bound; set by the parser

    def _update_hook(self, my_task: Task) -> Any:
        top = my_task.workflow.top_workflow
        if not getattr(top, CHILD_CALLS, False) or my_task.id in top.subprocesses:
            return super()._update_hook(my_task)  # a Spiff subprocess (histories from before)
        # the caller's side of the start (pre-script, data input associations), without the subprocess
        super(SubWorkflowTask, self)._update_hook(my_task)
        my_task._set_state(TaskState.STARTED)
        return None


def is_call(task: Task) -> bool:
    return isinstance(task.task_spec, CallActivity)


def started_calls(workflow: Any) -> list[Task]:
    """Call activities waiting for their called instance."""
    top = workflow.top_workflow
    return [
        t
        for t in workflow.get_tasks(state=TaskState.STARTED)
        if isinstance(t.task_spec, CallActivity) and t.id not in top.subprocesses
    ]


def is_started_call(task: Task) -> bool:
    return (
        is_call(task) and task.has_state(TaskState.STARTED) and task.id not in task.workflow.top_workflow.subprocesses
    )


def returned(task: Task, variables: dict[str, Any], outputs_only: bool) -> None:
    """The called instance completed with `variables`: the call activity takes them and runs on (its
    post-script and outgoing flows run in the next engine pass, as after a Spiff subprocess)."""
    if outputs_only:
        task.data.update(variables)
    else:
        task.data = dict(variables)
    task._set_state(TaskState.READY)


@dataclass(frozen=True)
class CalledProcess:
    """What a call activity calls, as the model says."""

    element_id: str
    process_id: str
    binding: str  # one of BINDINGS
    version: int | None  # the pinned version, for binding "version"


class BindingError(ValueError):
    def __init__(self, element_id: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.element_id = element_id
        self.line = line


def read_call(node: etree._Element) -> CalledProcess | None:
    """How a call activity is bound (None without a called process: Spiff's parser names that).
    Raises BindingError for a binding this platform does not run (a version tag), naming the element."""
    element_id = node.get("id") or ""
    process_id = (node.get("calledElement") or "").strip()
    zeebe = node.xpath("./bpmn:extensionElements/zeebe:calledElement", namespaces=_NS)
    binding = (node.get(f"{_CAMUNDA}calledElementBinding") or "").strip()
    version_text = (node.get(f"{_CAMUNDA}calledElementVersion") or "").strip()
    if zeebe:
        process_id = process_id or (zeebe[0].get("processId") or "").strip()
        binding = binding or (zeebe[0].get("bindingType") or "").strip()
    binding = binding or "latest"
    if not process_id:
        return None
    if binding not in BINDINGS:
        raise BindingError(
            element_id,
            node.sourceline,
            f"call activity binding {binding!r} is not supported: use latest, deployment, or version "
            "with camunda:calledElementVersion",
        )
    version = None
    if binding == "version":
        if not version_text.isdigit() or int(version_text) < 1:
            raise BindingError(
                element_id,
                node.sourceline,
                f"binding 'version' needs camunda:calledElementVersion to be a version number, got {version_text!r}",
            )
        version = int(version_text)
    return CalledProcess(element_id, process_id, binding, version)


def calls_of(specs: list[Any]) -> tuple[CalledProcess, ...]:
    """What the call activities of these process specs call, each once."""
    found: dict[str, CalledProcess] = {}
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if isinstance(task_spec, CallActivity) and task_spec.call is not None:
                found.setdefault(task_spec.bpmn_id, task_spec.call)
    return tuple(found.values())


def called(task: Task) -> str:
    """The process id a call activity calls."""
    process_id: str = task.task_spec.spec
    return process_id


def input_variables(spec: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What the called process starts with: all of the caller's data, or only its declared data
    inputs. Raises KeyError naming a declared input the caller does not have."""
    inputs = spec.io_specification.data_inputs if spec.io_specification is not None else []
    if not inputs:
        return dict(data)
    missing = [var.bpmn_id for var in inputs if var.bpmn_id not in data]
    if missing:
        raise KeyError(f"the called process declares data inputs the caller does not have: {', '.join(missing)}")
    return {var.bpmn_id: data[var.bpmn_id] for var in inputs}


def output_variables(spec: Any, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """What goes back to the caller, and whether only declared outputs (merged, not replacing).
    Raises KeyError naming a declared output the process did not produce."""
    outputs = spec.io_specification.data_outputs if spec.io_specification is not None else []
    if not outputs:
        return dict(data), False
    missing = [var.bpmn_id for var in outputs if var.bpmn_id not in data]
    if missing:
        raise KeyError(f"the process did not produce its declared data outputs: {', '.join(missing)}")
    return {var.bpmn_id: data[var.bpmn_id] for var in outputs}, True
