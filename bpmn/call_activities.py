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
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.spiff.specs.defaults import CallActivity as SpiffCallActivity
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

CHILD_CALLS = "aimatrix_child_calls"  # attribute of the top workflow: calls start child workflows

BINDINGS = ("latest", "deployment", "version")
_NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "zeebe": "http://camunda.org/schema/zeebe/1.0"}
_CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"


class CallActivity(SpiffCallActivity):
    """Spiff's call activity, which waits for a child workflow where the instance runs calls so.
    (The class name stays: the twin and the audit read element types by it.)"""

    call: CalledProcess | None = None  # how it is bound; set by the parser
    mapping: CallMapping | None = None  # Camunda's data mappings; None: SpiffWorkflow's (all in, all back)

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


def waits_for_call(task: Task) -> bool:
    """A call activity whose work is a called instance (not a Spiff subprocess): started, it waits."""
    return is_call(task) and task.id not in task.workflow.top_workflow.subprocesses


@dataclass(frozen=True)
class CallMapping:
    """Camunda's data mappings of a call activity (`zeebe:ioMapping` with `zeebe:calledElement`'s
    propagateAll* flags; `camunda:in` and `camunda:out`). Expressions are Python, as the parser made
    them (FEEL and JUEL translated); the outputs' are evaluated over the called instance's data."""

    inputs: tuple[tuple[str, str], ...] = ()  # (expression over the caller's data, variable)
    outputs: tuple[tuple[str, str], ...] = ()  # (expression over the called instance's data, variable)
    all_in: bool = True  # the called instance starts with all of the caller's data, and the inputs
    all_out: bool = True  # without outputs, the caller takes all of the called instance's data


def call_inputs(task: Task) -> dict[str, Any]:
    """What the called instance starts with. Raises what an input expression raises."""
    mapping = task.task_spec.mapping
    if mapping is None:
        return dict(task.data)
    data = dict(task.data) if mapping.all_in else {}
    environment = task.workflow.script_engine.environment
    for source, target in mapping.inputs:
        data[target] = environment.evaluate(source, dict(task.data))
    return data


def returned(task: Task, variables: dict[str, Any], outputs_only: bool) -> None:
    """The called instance completed with `variables`: the call activity takes them (through its
    output mappings, if any) and runs on (its post-script and outgoing flows run in the next engine
    pass, as after a Spiff subprocess). Raises what an output expression raises."""
    mapping = task.task_spec.mapping
    if mapping is not None and mapping.outputs:
        environment = task.workflow.script_engine.environment
        task.data.update({target: environment.evaluate(source, dict(variables)) for source, target in mapping.outputs})
    elif mapping is not None and not mapping.all_out and not _one_of_many(task):
        pass  # the caller takes nothing back
    elif outputs_only or (mapping is not None and not mapping.all_in):
        task.data.update(variables)  # merged: the called instance did not hold all of the caller's data
    else:
        task.data = dict(variables)  # as SpiffWorkflow: the called instance started with all of it
    task._set_state(TaskState.READY)


def _one_of_many(task: Task) -> bool:
    """One instance of a multi-instance call: its data is that instance's own scope (the multi-instance
    collects from it with its output element, and nothing else of it reaches the process), so the
    called instance's data comes back to it as Zeebe propagates it to the call activity's local scope."""
    return task.parent is not None and isinstance(task.parent.task_spec, MultiInstanceTask)


@dataclass(frozen=True)
class CalledProcess:
    """What a call activity calls, as the model says."""

    element_id: str
    process_id: str
    binding: str  # one of BINDINGS
    version: int | None  # the pinned version, for binding "version"
    file: str | None = None  # where the call activity is, for errors about it
    line: int | None = None


class BindingError(ValueError):
    """A binding this platform does not run (a version tag)."""


def read_call(node: etree._Element, file: str | None = None) -> CalledProcess | None:
    """How a call activity is bound (None without a called process: Spiff's parser names that).
    Raises BindingError for a binding this platform does not run."""
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
            f"call activity binding {binding!r} is not supported: use latest, deployment, or version "
            "with camunda:calledElementVersion"
        )
    version = None
    if binding == "version":
        if not version_text.isdigit() or int(version_text) < 1:
            raise BindingError(
                f"binding 'version' needs camunda:calledElementVersion to be a version number, got {version_text!r}"
            )
        version = int(version_text)
    return CalledProcess(element_id, process_id, binding, version, file, node.sourceline)


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
