"""A deployed BPMN definition as a simulation graph: nodes, the resources they need, and branches.

The graph is read from SpiffWorkflow's parse of the definition (`bpmn.definitions.load_deployed`),
the same parse the engine runs, so element ids and element types (Spiff's spec class names) are the
ones the audit history records, and calibration can match the two. Spiff adds nodes of its own
(`Start`, `<process>.EndJoin`, `<task>.BoundaryEventSplit` …) that have no BPMN id; they are
looked through here. Candidate groups are not kept by Spiff, so they are read from the XML.

What becomes what:
- user, manual and untyped tasks need one approver of their candidate group (else their lane, else
  the shared group `approvers`);
- service tasks need one slot of their worker pool, named by the operator's prefix (`gpu.classify`
  → `gpu`);
- script and business-rule tasks run inline in the engine: no resource, and no duration until one is
  given or calibrated;
- exclusive and inclusive gateways branch by probability, not by their conditions (the twin has no
  process data); parallel gateways fork and join; any element with several outgoing flows forks;
- intermediate timer events wait their literal duration (`PT5M`); a timer computed from process data
  waits nothing until a duration is given or calibrated; message waits likewise;
- boundary events are branches out of their task taken with a probability (0 until calibrated):
  interrupting ones replace the task's normal outcome, non-interrupting ones add a path;
- embedded subprocesses and call activities run their own graph and continue when every token in
  them has ended.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from bpmn.definitions import BPMN_NS, content_hash, load_deployed, timer_definitions
from bpmn.parser import ProcessSpec
from bpmn.xml import parse_xml
from workers.twin.distributions import Distribution

_NS = {
    "bpmn": BPMN_NS,
    "zeebe": "http://camunda.org/schema/zeebe/1.0",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
}
HUMAN_TYPES = ("UserTask", "ManualTask", "NoneTask")
SERVICE_TYPES = ("ExternalServiceTask", "ServiceTask")
SUBPROCESS_TYPES = ("SubWorkflowTask", "CallActivity", "TransactionSubprocess")
DEFAULT_GROUP = "approvers"
# The element types whose time between entered and completed is a duration worth fitting.
TIMED_KINDS = ("task", "event")


class NodeKind(StrEnum):
    START = "start"
    END = "end"
    TASK = "task"  # work: may need a resource, takes a duration
    EVENT = "event"  # a wait without a resource: timers, messages (duration 0 for throw events)
    EXCLUSIVE = "exclusive"
    INCLUSIVE = "inclusive"
    PARALLEL = "parallel"
    SUBPROCESS = "subprocess"
    BOUNDARY = "boundary"


@dataclass
class Node:
    id: str
    kind: NodeKind
    element_type: str  # Spiff's spec class name, as the audit history writes it
    name: str
    scope: str  # the process or subprocess whose graph holds it
    outputs: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    resource: str | None = None
    timer_s: float | None = None  # a literal timer's wait
    child_scope: str | None = None  # subprocesses: the graph they run
    attached_to: str | None = None  # boundary events: their task
    interrupting: bool = True  # boundary events
    boundary: list[str] = field(default_factory=list)  # tasks: their boundary events
    default_output: str | None = None  # gateways: the default flow's target

    @property
    def branches(self) -> list[str]:
        """The choices a probability is needed for: a gateway's outputs, a task's boundary events."""
        if self.kind in (NodeKind.EXCLUSIVE, NodeKind.INCLUSIVE) and len(self.outputs) > 1:
            return list(self.outputs)
        return list(self.boundary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "element_type": self.element_type,
            "name": self.name,
            "scope": self.scope,
            "outputs": list(self.outputs),
            "inputs": list(self.inputs),
            "resource": self.resource,
            "timer_s": self.timer_s,
            "child_scope": self.child_scope,
            "attached_to": self.attached_to,
            "interrupting": self.interrupting,
            "boundary": list(self.boundary),
            "default_output": self.default_output,
        }


@dataclass
class Resource:
    id: str  # "group:<name>" for approvers, "pool:<prefix>" for worker pools
    kind: str  # "approvers" | "worker_pool"
    capacity: int | None  # None: as many as needed (a pure delay)
    elements: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "capacity": self.capacity, "elements": list(self.elements)}


# Defaults before calibration or a manual setting: one approver per group (the scarce resource a twin
# is usually asked about) and worker pools wide enough never to queue (activities run concurrently).
DEFAULT_APPROVERS = 1
DEFAULT_POOL_CAPACITY: int | None = None


@dataclass
class ProcessModel:
    process_id: str
    name: str
    nodes: dict[str, Node]
    starts: dict[str, str]  # scope → its start event
    resources: dict[str, Resource]
    warnings: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.starts[self.process_id]

    def node(self, element_id: str) -> Node:
        try:
            return self.nodes[element_id]
        except KeyError:
            raise KeyError(f"the process has no element {element_id!r}") from None

    def timed_elements(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.kind in TIMED_KINDS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "name": self.name,
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "starts": dict(self.starts),
            "resources": [r.to_dict() for r in self.resources.values()],
            "warnings": list(self.warnings),
        }


def build_model(files: dict[str, str], process_id: str) -> ProcessModel:
    """The graph of a deployed definition (file name → XML text, as the store keeps it)."""
    process, _ = load_deployed(files, process_id, content_hash(files))
    groups: dict[str, str] = {}
    for text in files.values():
        groups.update(_candidate_groups(parse_xml(text.encode("utf-8"))))
    return _Builder(process, groups).build()


def model_from_file(path: str | Path, process_id: str | None = None) -> ProcessModel:
    """Build from one .bpmn file; without `process_id`, its first executable process."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if process_id is None:
        root = parse_xml(text.encode("utf-8"))
        found = root.xpath("//bpmn:process[@isExecutable='true']/@id", namespaces=_NS)
        if not found:
            raise ValueError(f"{path.name} has no executable process")
        process_id = str(found[0])
    return build_model({path.name: text}, process_id)


def _candidate_groups(root: etree._Element) -> dict[str, str]:
    """element id → its first candidate group (Camunda 8 `zeebe:assignmentDefinition`, or Camunda 7)."""
    groups: dict[str, str] = {}
    for task in root.xpath("//bpmn:userTask[@id]", namespaces=_NS):
        found = task.xpath("./bpmn:extensionElements/zeebe:assignmentDefinition/@candidateGroups", namespaces=_NS)
        text = str(found[0]) if found else task.get(f"{{{_NS['camunda']}}}candidateGroups", "")
        first = text.split(",")[0].strip()
        if first and not first.startswith("="):  # an expression picks the group at run time
            groups[task.get("id")] = first
    return groups


class _Builder:
    def __init__(self, process: ProcessSpec, groups: dict[str, str]) -> None:
        self.process = process
        self.groups = groups
        self.nodes: dict[str, Node] = {}
        self.starts: dict[str, str] = {}
        self.resources: dict[str, Resource] = {}
        self.warnings: list[str] = []

    def build(self) -> ProcessModel:
        specs = {self.process.process_id: self.process.spec, **self.process.subprocess_specs}
        for scope, spec in specs.items():
            self._add_scope(scope, spec)
        for node in self.nodes.values():
            for target in node.outputs:
                if target in self.nodes:
                    self.nodes[target].inputs.append(node.id)
        for node in self.nodes.values():
            if node.child_scope is not None and node.child_scope not in specs:
                raise ValueError(
                    f"call activity {node.id!r} calls {node.child_scope!r}, which was deployed apart from this "
                    "definition: the twin simulates the processes of one deployment"
                )
            if node.child_scope is not None and node.child_scope not in self.starts:
                raise ValueError(f"subprocess {node.id!r} runs {node.child_scope!r}, which has no start event")
        if self.process.process_id not in self.starts:
            raise ValueError("the process has no start event")
        name = getattr(self.process.spec, "description", None) or self.process.process_id
        return ProcessModel(self.process.process_id, str(name), self.nodes, self.starts, self.resources, self.warnings)

    def _add_scope(self, scope: str, spec: Any) -> None:
        task_specs = list(spec.task_specs.values())
        starts = [ts for ts in task_specs if type(ts).__name__ == "StartEvent"]
        if starts:
            plain = [
                ts for ts in starts if type(getattr(ts, "event_definition", None)).__name__ == "NoneEventDefinition"
            ]
            self.starts[scope] = str((plain or starts)[0].bpmn_id)
            if len(starts) > 1:
                self.warnings.append(f"{scope}: several start events; instances start at {self.starts[scope]!r}")
        for ts in task_specs:
            bpmn_id = getattr(ts, "bpmn_id", None)
            if not bpmn_id:
                continue  # Spiff's own plumbing
            node = self._node(scope, ts)
            if node is not None:
                node.outputs = _unique(self._targets(ts.outputs))
                self.nodes[node.id] = node
        for node in list(self.nodes.values()):
            if node.kind == NodeKind.BOUNDARY and node.attached_to in self.nodes:
                self.nodes[node.attached_to].boundary.append(node.id)

    def _targets(self, outputs: Iterable[Any]) -> list[str]:
        found: list[str] = []
        for ts in outputs:
            kind = type(ts).__name__
            if kind == "BoundaryEventSplit":
                # the task its boundary events hang on: the one output of the split that is no event
                found.extend(str(o.bpmn_id) for o in ts.outputs if type(o).__name__ != "BoundaryEvent")
            elif getattr(ts, "bpmn_id", None):
                found.append(str(ts.bpmn_id))
            # BoundaryEventJoin, EndJoin: the engine's bookkeeping, no flow
        return found

    def _node(self, scope: str, ts: Any) -> Node | None:
        kind_name = type(ts).__name__
        node = Node(str(ts.bpmn_id), NodeKind.TASK, kind_name, str(ts.bpmn_name or ts.bpmn_id), scope)
        if kind_name == "StartEvent":
            node.kind = NodeKind.START
        elif kind_name == "EndEvent":
            node.kind = NodeKind.END
        elif kind_name == "ExclusiveGateway":
            node.kind = NodeKind.EXCLUSIVE
            node.default_output = _name(getattr(ts, "default_task_spec", None)) if len(ts.outputs) > 1 else None
        elif kind_name == "InclusiveGateway":
            node.kind = NodeKind.INCLUSIVE
            default = [target for condition, target in getattr(ts, "cond_task_specs", []) if condition is None]
            node.default_output = default[0] if default and len(ts.outputs) > 1 else None
        elif kind_name == "ParallelGateway":
            node.kind = NodeKind.PARALLEL
        elif kind_name in SUBPROCESS_TYPES:
            node.kind = NodeKind.SUBPROCESS
            node.child_scope = str(ts.spec)
        elif kind_name == "BoundaryEvent":
            node.kind = NodeKind.BOUNDARY
            node.interrupting = bool(getattr(ts, "cancel_activity", True))
            node.attached_to = self._attached_task(ts)
        elif kind_name in HUMAN_TYPES:
            group = self.groups.get(node.id) or getattr(ts, "lane", None) or DEFAULT_GROUP
            node.resource = self._resource(f"group:{group}", "approvers", DEFAULT_APPROVERS, node.id)
        elif kind_name in SERVICE_TYPES:
            operator = str(getattr(ts, "operation_name", "") or "service")
            node.resource = self._resource(
                f"pool:{operator.split('.')[0]}", "worker_pool", DEFAULT_POOL_CAPACITY, node.id
            )
        elif "Event" in kind_name or kind_name == "ReceiveTask":
            node.kind = NodeKind.EVENT
            node.timer_s = self._timer(node.id, ts)
        elif "MultiInstance" in kind_name or "Loop" in kind_name:
            self.warnings.append(f"{node.id}: loop and multi-instance characteristics run as one task")
        if kind_name.startswith("EventSubprocess") or kind_name == "EventBasedGateway":
            self.warnings.append(f"{node.id}: {kind_name} is not simulated")
            return None
        return node

    def _attached_task(self, ts: Any) -> str | None:
        for parent in ts.inputs:
            if type(parent).__name__ == "BoundaryEventSplit":
                for sibling in parent.outputs:
                    if type(sibling).__name__ != "BoundaryEvent":
                        return str(sibling.bpmn_id)
        return None

    def _resource(self, resource_id: str, kind: str, capacity: int | None, element_id: str) -> str:
        resource = self.resources.setdefault(resource_id, Resource(resource_id, kind, capacity))
        resource.elements.append(element_id)
        return resource_id

    def _timer(self, element_id: str, ts: Any) -> float | None:
        timers = timer_definitions(getattr(ts, "event_definition", None))
        if not timers:
            return None
        text = (timers[0].expression or "").strip()
        try:
            value = ast.literal_eval(text)  # quote_iso_timers made literals Python strings
            seconds = TimerEventDefinition.get_timedelta_from_start(
                TimerEventDefinition.parse_iso_duration(value)
            ).total_seconds()
        except Exception:
            self.warnings.append(
                f"{element_id}: timer {text!r} is computed or a date: it waits 0 s until given a duration"
            )
            return None
        return float(seconds) if math.isfinite(seconds) else None


def _name(ts: Any) -> str | None:
    return str(ts) if isinstance(ts, str) else (str(ts.bpmn_id) if getattr(ts, "bpmn_id", None) else None)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def default_duration(node: Node) -> Distribution | None:
    """What a node takes before calibration: a literal timer's wait; None (no delay) otherwise."""
    if node.timer_s is not None:
        return Distribution.fixed(node.timer_s)
    return None
