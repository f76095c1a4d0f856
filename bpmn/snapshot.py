"""A running instance's SpiffWorkflow state as text, and back: what a Temporal run hands to the next one
when it continues as new (workflows/process_engine.py).

Only the state travels: the task tree, task data, subprocesses, pending events, and the elements a
pruned tree no longer holds. The specs do not: the next run parses the same pinned definition files
(they are in its input anyway), so a snapshot stays small, and our own task spec classes need no
serializer. The text is zlib-compressed JSON in base64: task data repeats itself from task to task,
and a 1,000-way multi-instance snapshot shrinks about tenfold.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

from bpmn import ordered_outputs, pruning
from bpmn.parser import ProcessSpec
from bpmn.script_engine import RestrictedScriptEngine

FORMAT = 1  # bumped when the layout changes; a run refuses a snapshot it cannot read


class _StateConverter(BpmnWorkflowConverter):
    """Spiff's workflow converter without the specs: they come from the definition files."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], process: ProcessSpec | None = None) -> BpmnWorkflow:
        assert process is not None, "a snapshot is restored against its process"
        workflow = BpmnWorkflow(
            process.spec,
            process.subprocess_specs,
            script_engine=RestrictedScriptEngine(inline_scripts=True),
            deserializing=True,
        )
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_registry = BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, BpmnWorkflow: _StateConverter})


def dump(workflow: BpmnWorkflow) -> str:
    _registry._encoder_mode = True  # as Spiff's serialize_json: unknown objects go to the encoder
    try:
        state = _registry.convert(workflow)
    finally:
        _registry._encoder_mode = False
    document = {
        "format": FORMAT,
        "state": state,
        "pruned_completed": pruning.pruned_completed(workflow),
        "ordered": bool(getattr(workflow, ordered_outputs.ORDERED, False)),
    }
    text = json.dumps(document, separators=(",", ":"), default=_unserializable)
    return base64.b64encode(zlib.compress(text.encode(), 6)).decode("ascii")


def load(text: str, process: ProcessSpec) -> BpmnWorkflow:
    document = json.loads(zlib.decompress(base64.b64decode(text)))
    if document.get("format") != FORMAT:
        raise ValueError(f"snapshot format {document.get('format')!r} is not {FORMAT}")
    workflow: BpmnWorkflow = _registry.restore(document["state"], process=process)
    pruning.remember_completed(workflow, document["pruned_completed"])
    setattr(workflow, ordered_outputs.ORDERED, document["ordered"])
    return workflow


def _unserializable(value: Any) -> Any:
    # task data holds only what scripts, results and forms produced, all JSON-able or registered
    # (datetime, timedelta, UUID); anything else is a bug to see, not a value to drop
    raise TypeError(f"the instance state holds a {type(value).__name__}, which cannot be carried over")
