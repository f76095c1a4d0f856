"""Fit the twin's parameters to what a definition actually did: its audit history ("sync").

A pure function over audit records, shaped as `GET /api/v1/instances/{id}/history` returns them
(`instance_id`, `definition_key`, `occurred_at`, `actor`, `action`, `element_id`, `element_type`, …),
so the platform can feed it rows from its database. What is read:

- arrivals: the times of `instance.started`; the gaps between them are fitted;
- durations: `element.completed` minus `element.entered` of the same element in the same instance
  (the first open entry: loops enter an element more than once). For a user task that includes the
  wait for an approver, which the simulation adds itself by queueing; so where completions name
  their actor, the work is estimated as completion - max(entered, that actor's previous completion):
  exact when each approver works through one task at a time without pause, an over-estimate when
  they pause between tasks. Service tasks are fitted as recorded: their time includes any wait for a
  worker of the pool;
- branches: for an exclusive or inclusive gateway, which of its targets were entered in the same
  engine pass as it completed (the audit gives every record of one pass the same time); for a task
  with boundary events, how often each event was entered per entry of the task;
- approvers: the distinct actors completing the tasks of each candidate group within the window.
  People who share their time with other work make this an over-estimate of the capacity.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from workers.twin.distributions import Fit, fit
from workers.twin.model import NodeKind, ProcessModel
from workers.twin.params import SimulationParams

Record = Mapping[str, Any]


@dataclass(frozen=True)
class DurationFit:
    element: str
    fit: Fit  # what the simulation uses
    measure: str  # "work" (the approver's time, estimated) or "entered→completed"
    sojourn: Fit | None = None  # entered→completed, where `fit` is an estimate of the work inside it
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "element": self.element,
            "measure": self.measure,
            "fit": self.fit.to_dict(),
            "sojourn": self.sojourn.to_dict() if self.sojourn else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class BranchFit:
    element: str
    kind: str  # exclusive | inclusive | boundary
    passes: int  # times the gateway completed (or the task was entered)
    counts: dict[str, int]  # target → times taken
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "element": self.element,
            "kind": self.kind,
            "passes": self.passes,
            "counts": dict(self.counts),
            "probabilities": dict(self.probabilities),
            "ci95": {t: _proportion_ci(p, self.passes) for t, p in self.probabilities.items()},
        }


@dataclass(frozen=True)
class ApproverFit:
    resource: str
    approvers: list[str]
    elements: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "count": len(self.approvers), "approvers": list(self.approvers),
                "elements": list(self.elements)}  # fmt: skip


@dataclass
class Calibration:
    process_id: str
    window: tuple[str | None, str | None]  # ISO 8601, as given (None: unbounded)
    records: int  # of this definition, inside the window
    instances: int  # started inside the window
    arrival: Fit | None
    arrival_rate_per_s: float | None
    durations: dict[str, DurationFit] = field(default_factory=dict)
    branches: dict[str, BranchFit] = field(default_factory=dict)
    approvers: dict[str, ApproverFit] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def params(self) -> SimulationParams:
        """The fitted values as a parameter layer; put manual settings on top with `overridden_by`."""
        branches: dict[str, dict[str, float]] = {}
        for element, branch in self.branches.items():
            branches[element] = dict(branch.probabilities)
        return SimulationParams(
            arrival=self.arrival.distribution if self.arrival else None,
            durations={element: d.fit.distribution for element, d in self.durations.items()},
            capacities={r: len(a.approvers) for r, a in self.approvers.items() if a.approvers},
            branches=branches,
            source="calibrated",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "window": list(self.window),
            "records": self.records,
            "instances": self.instances,
            "arrival": self.arrival.to_dict() if self.arrival else None,
            "arrival_rate_per_s": self.arrival_rate_per_s,
            "durations": {k: v.to_dict() for k, v in self.durations.items()},
            "branches": {k: v.to_dict() for k, v in self.branches.items()},
            "approvers": {k: v.to_dict() for k, v in self.approvers.items()},
            "warnings": list(self.warnings),
        }


def calibrate(
    model: ProcessModel, records: Iterable[Record], window: tuple[datetime, datetime] | None = None
) -> Calibration:
    """Fit arrivals, durations, branch probabilities and approver counts to `records` within `window`.

    `window` is [start, end) in aware datetimes; records outside it are ignored, as are records of
    other definitions (`definition_key` other than the model's process id).
    """
    chosen, skipped = _select(model.process_id, records, window)
    warnings: list[str] = []
    if skipped:
        warnings.append(f"{skipped} records of other definitions were ignored")
    by_instance: dict[str, list[tuple[datetime, int, Record]]] = defaultdict(list)
    for order, (at, record) in enumerate(chosen):
        by_instance[str(record.get("instance_id"))].append((at, order, record))
    for events in by_instance.values():
        events.sort(key=lambda e: (e[0], e[1]))

    arrival, rate, instances = _arrivals(chosen, window, warnings)
    calibration = Calibration(
        process_id=model.process_id,
        window=(window[0].isoformat(), window[1].isoformat()) if window else (None, None),
        records=len(chosen),
        instances=instances,
        arrival=arrival,
        arrival_rate_per_s=rate,
        warnings=warnings,
    )
    calibration.durations = _durations(model, by_instance, warnings)
    calibration.branches = _branches(model, by_instance)
    calibration.approvers = _approvers(model, chosen)
    return calibration


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _select(
    process_id: str, records: Iterable[Record], window: tuple[datetime, datetime] | None
) -> tuple[list[tuple[datetime, Record]], int]:
    chosen: list[tuple[datetime, Record]] = []
    skipped = 0
    for record in records:
        key = record.get("definition_key")
        if key is not None and key != process_id:
            skipped += 1
            continue
        at = _parse_time(record["occurred_at"])
        if window is not None and not window[0] <= at < window[1]:
            continue
        chosen.append((at, record))
    return chosen, skipped


def _arrivals(
    chosen: list[tuple[datetime, Record]], window: tuple[datetime, datetime] | None, warnings: list[str]
) -> tuple[Fit | None, float | None, int]:
    starts = sorted(at.timestamp() for at, r in chosen if r.get("action") == "instance.started")
    if len(starts) < 2:
        warnings.append("fewer than 2 instances started in the window: no arrival rate fitted")
        return None, None, len(starts)
    gaps = [b - a for a, b in pairwise(starts)]
    fitted = fit(gaps, kinds=("exponential", "gamma", "lognormal"))
    span = (window[1] - window[0]).total_seconds() if window else starts[-1] - starts[0]
    count = len(starts) if window else len(starts) - 1
    return fitted, count / span if span > 0 else None, len(starts)


def _durations(
    model: ProcessModel, by_instance: dict[str, list[tuple[datetime, int, Record]]], warnings: list[str]
) -> dict[str, DurationFit]:
    sojourns: dict[str, list[float]] = defaultdict(list)
    completions: list[tuple[float, float, str, str]] = []  # completed, entered, actor, element
    for events in by_instance.values():
        open_entries: dict[str, deque[float]] = defaultdict(deque)
        for at, _, record in events:
            element = record.get("element_id")
            action = record.get("action")
            if not element or element not in model.nodes:
                continue
            if action == "element.entered":
                open_entries[element].append(at.timestamp())
            elif action in ("element.completed", "element.cancelled") and open_entries[element]:
                entered = open_entries[element].popleft()
                if action == "element.completed":
                    sojourns[element].append(at.timestamp() - entered)
                    actor = record.get("actor")
                    if actor:
                        completions.append((at.timestamp(), entered, str(actor), element))
    work: dict[str, list[float]] = defaultdict(list)
    last_by_actor: dict[str, float] = {}
    for completed, entered, actor, element in sorted(completions):
        start = max(entered, last_by_actor.get(actor, -math.inf))
        work[element].append(completed - start)
        last_by_actor[actor] = completed

    fits: dict[str, DurationFit] = {}
    for element, samples in sojourns.items():
        node = model.nodes[element]
        if node.kind not in (NodeKind.TASK, NodeKind.EVENT) or node.timer_s is not None:
            continue  # gateways and events take no time; a literal timer is known exactly
        sojourn = fit(samples)
        human = node.resource is not None and node.resource.startswith("group:")
        if human and len(work.get(element, ())) == len(samples):
            note = "the approver's work: completion - max(entered, the approver's previous completion)"
            fits[element] = DurationFit(element, fit(work[element]), "work", sojourn, note)
        else:
            note = None
            if human:
                note = "completions without an actor: entered→completed, which includes waiting for an approver"
                warnings.append(f"{element}: {note}")
            elif node.resource is not None:
                note = "entered→completed: includes any wait for a worker of the pool"
            fits[element] = DurationFit(element, sojourn, "entered→completed", None, note)
    return fits


def _branches(model: ProcessModel, by_instance: dict[str, list[tuple[datetime, int, Record]]]) -> dict[str, BranchFit]:
    gateways = {
        n.id: n
        for n in model.nodes.values()
        if n.kind in (NodeKind.EXCLUSIVE, NodeKind.INCLUSIVE) and len(n.outputs) > 1
    }
    tasks = {n.id: n for n in model.nodes.values() if n.boundary}
    passes: dict[str, int] = defaultdict(int)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for events in by_instance.values():
        entered_at: dict[datetime, set[str]] = defaultdict(set)
        for at, _, record in events:
            if record.get("action") == "element.entered" and record.get("element_id"):
                entered_at[at].add(str(record["element_id"]))
        for at, _, record in events:
            element = record.get("element_id")
            action = record.get("action")
            if element in gateways and action == "element.completed":
                passes[element] += 1
                for target in gateways[element].outputs:
                    if target in entered_at[at]:
                        counts[element][target] += 1
            elif element in tasks and action == "element.entered":
                passes[element] += 1
            elif (
                record.get("element_type") == "BoundaryEvent" and action == "element.entered" and element in model.nodes
            ):
                task = model.nodes[element].attached_to
                if task:
                    counts[task][element] += 1
    found: dict[str, BranchFit] = {}
    for element, total in passes.items():
        if not total:
            continue
        node = model.nodes[element]
        kind = node.kind.value if node.kind in (NodeKind.EXCLUSIVE, NodeKind.INCLUSIVE) else "boundary"
        taken = {t: counts[element].get(t, 0) for t in node.branches}
        if kind == "exclusive":
            chosen = sum(taken.values())
            probabilities = {t: c / chosen for t, c in taken.items()} if chosen else {}
        else:
            probabilities = {t: c / total for t, c in taken.items()}
            if kind == "inclusive" and node.default_output:
                probabilities.pop(node.default_output, None)  # it fires when no other does
        if probabilities:
            found[element] = BranchFit(element, kind, total, taken, probabilities)
    return found


def _approvers(model: ProcessModel, chosen: list[tuple[datetime, Record]]) -> dict[str, ApproverFit]:
    actors: dict[str, set[str]] = defaultdict(set)
    for _, record in chosen:
        element = record.get("element_id")
        if record.get("action") != "element.completed" or not record.get("actor") or element not in model.nodes:
            continue
        resource = model.nodes[element].resource
        if resource and resource.startswith("group:"):
            actors[resource].add(str(record["actor"]))
    return {
        resource: ApproverFit(resource, sorted(names), list(model.resources[resource].elements))
        for resource, names in actors.items()
    }


def _proportion_ci(p: float, n: int) -> list[float]:
    if n <= 0:
        return [0.0, 1.0]
    half = 1.96 * math.sqrt(max(p * (1 - p), 0.0) / n)
    return [max(0.0, p - half), min(1.0, p + half)]
