"""What a simulation run assumes: arrivals, durations, capacities, branch probabilities, and where each came from.

Three layers, the later one winning key by key: the model's own defaults (literal timers, default
capacities, equal branches), then what calibration fitted from the audit history, then what a person
set by hand. `SimulationParams.overridden_by` stacks two layers; `resolve` applies the stack to a
model, checks every id against it, and records the source of each value for the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.twin.distributions import Distribution
from workers.twin.model import Node, NodeKind, ProcessModel, default_duration


@dataclass
class SimulationParams:
    """Inputs of a run. Every field is optional; an empty one leaves the layer below as it is.

    `arrival` is the time between instance starts; `arrival_rate_per_s` rescales it to that rate
    keeping its shape (or, with no `arrival`, means Poisson arrivals). Durations are service times:
    for a user task, the time an approver works on it, not the wait for one. Capacities: servers per
    resource id (`group:<candidate group>`, `pool:<operator prefix>`), None for unlimited. Branches:
    for an exclusive gateway, the probability of each target (those left out share the rest); for an
    inclusive gateway, each target's own probability of firing; for a task, each boundary event's.
    """

    arrival: Distribution | None = None
    arrival_rate_per_s: float | None = None
    durations: dict[str, Distribution] = field(default_factory=dict)
    capacities: dict[str, int | None] = field(default_factory=dict)
    branches: dict[str, dict[str, float]] = field(default_factory=dict)
    sla_s: float | None = None
    warmup_s: float | None = None
    source: str = "manual"  # how `resolve` labels what this layer sets
    _sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # set when layers merge

    def overridden_by(self, other: SimulationParams) -> SimulationParams:
        """This layer with `other` on top: each of other's values wins; the sources follow the values."""
        # arrivals are one setting: a rate given on top of a lower layer's distribution rescales it,
        # but a distribution given on top replaces the lower layer's rate too
        arrival, rate = (
            (other.arrival or self.arrival, other.arrival_rate_per_s)
            if other.arrival_rate_per_s
            else ((other.arrival, None) if other.arrival else (self.arrival, self.arrival_rate_per_s))
        )
        merged = SimulationParams(
            arrival=arrival,
            arrival_rate_per_s=rate,
            durations={**self.durations, **other.durations},
            capacities={**self.capacities, **other.capacities},
            branches={k: dict(v) for k, v in self.branches.items()},
            sla_s=other.sla_s if other.sla_s is not None else self.sla_s,
            warmup_s=other.warmup_s if other.warmup_s is not None else self.warmup_s,
            source=other.source,
        )
        for element, probabilities in other.branches.items():
            merged.branches[element] = {**merged.branches.get(element, {}), **probabilities}
        merged._sources = {**self._sources_of(), **other._sources_of()}
        return merged

    def _sources_of(self) -> dict[str, str]:
        """key → source: `arrival`, `duration:<id>`, `capacity:<id>`, `branch:<id>:<target>`."""
        if self._sources:
            return dict(self._sources)
        keys = [f"duration:{k}" for k in self.durations] + [f"capacity:{k}" for k in self.capacities]
        keys += [f"branch:{g}:{t}" for g, targets in self.branches.items() for t in targets]
        if self.arrival is not None or self.arrival_rate_per_s is not None:
            keys.append("arrival")
        return dict.fromkeys(keys, self.source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrival": self.arrival.to_dict() if self.arrival else None,
            "arrival_rate_per_s": self.arrival_rate_per_s,
            "durations": {k: v.to_dict() for k, v in self.durations.items()},
            "capacities": dict(self.capacities),
            "branches": {k: dict(v) for k, v in self.branches.items()},
            "sla_s": self.sla_s,
            "warmup_s": self.warmup_s,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any], source: str = "manual") -> SimulationParams:
        """Read a request body (the shape `to_dict` writes); raises ValueError on anything malformed."""
        arrival = data.get("arrival")
        rate = data.get("arrival_rate_per_s")
        capacities: dict[str, int | None] = {}
        for key, value in dict(data.get("capacities") or {}).items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"capacity of {key!r} must be a positive integer or null (unlimited)")
            capacities[str(key)] = value
        branches: dict[str, dict[str, float]] = {}
        for element, targets in dict(data.get("branches") or {}).items():
            branches[str(element)] = {str(t): _probability(p) for t, p in dict(targets).items()}
        return SimulationParams(
            arrival=Distribution.from_dict(arrival) if arrival else None,
            arrival_rate_per_s=_positive(rate, "arrival_rate_per_s"),
            durations={str(k): Distribution.from_dict(v) for k, v in dict(data.get("durations") or {}).items()},
            capacities=capacities,
            branches=branches,
            sla_s=_positive(data.get("sla_s"), "sla_s"),
            warmup_s=_non_negative(data.get("warmup_s"), "warmup_s"),
            source=source,
        )


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"a branch probability must be between 0 and 1, not {value!r}")
    return float(value)


def _positive(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number")
    return float(value)


def _non_negative(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be zero or more")
    return float(value)


@dataclass
class Resolved:
    """Every value a run uses, checked against the model, with the source of each."""

    arrival: Distribution
    durations: dict[str, Distribution | None]  # None: takes no time
    capacities: dict[str, int | None]
    branches: dict[str, dict[str, float]]  # only for nodes with choices
    sla_s: float | None
    warmup_s: float
    sources: dict[str, str]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrival": {**self.arrival.to_dict(), "source": self.sources.get("arrival", "default")},
            "durations": {
                k: {**(v.to_dict() if v else Distribution.fixed(0).to_dict()), "source": self._source(f"duration:{k}")}
                for k, v in self.durations.items()
            },
            "capacities": {
                k: {"capacity": v, "source": self._source(f"capacity:{k}")} for k, v in self.capacities.items()
            },
            "branches": {
                g: {t: {"probability": p, "source": self._source(f"branch:{g}:{t}")} for t, p in targets.items()}
                for g, targets in self.branches.items()
            },
            "sla_s": self.sla_s,
            "warmup_s": self.warmup_s,
        }

    def _source(self, key: str) -> str:
        return self.sources.get(key, "default")


def resolve(model: ProcessModel, params: SimulationParams) -> Resolved:
    sources = params._sources_of()
    warnings = list(model.warnings)
    if params.arrival is None and params.arrival_rate_per_s is None:
        raise ValueError("no arrivals: give arrival_rate_per_s or an arrival distribution, or calibrate")
    arrival = params.arrival or Distribution.exponential(1 / (params.arrival_rate_per_s or 1))
    if params.arrival_rate_per_s is not None and params.arrival is not None:
        arrival = arrival.scaled(1 / (params.arrival_rate_per_s * arrival.mean()))
    if arrival.mean() <= 0:
        raise ValueError("the time between arrivals must average more than zero")

    for element in params.durations:
        node = model.node(element)
        if node.kind not in (NodeKind.TASK, NodeKind.EVENT):
            raise ValueError(f"{element!r} is a {node.kind.value}: only tasks and events take time")
    durations: dict[str, Distribution | None] = {}
    for node in model.nodes.values():
        if node.kind in (NodeKind.TASK, NodeKind.EVENT):
            durations[node.id] = params.durations.get(node.id) or default_duration(node)
            if durations[node.id] is None and node.resource is not None:
                warnings.append(f"{node.id}: no duration given or calibrated, so it takes no time")

    for resource in params.capacities:
        if resource not in model.resources:
            known = ", ".join(model.resources) or "none"
            raise ValueError(f"the process has no resource {resource!r} (it has: {known})")
    capacities = {r.id: params.capacities.get(r.id, r.capacity) for r in model.resources.values()}

    for element in params.branches:
        if not model.node(element).branches:
            raise ValueError(f"{element!r} has no branches to give probabilities for")
    branches = {
        node.id: _branch_probabilities(node, params.branches.get(node.id, {}), warnings)
        for node in model.nodes.values()
        if node.branches
    }
    warmup = params.warmup_s or 0.0
    return Resolved(arrival, durations, capacities, branches, params.sla_s, warmup, sources, warnings)


def _branch_probabilities(node: Node, given: dict[str, float], warnings: list[str]) -> dict[str, float]:
    choices = node.branches
    unknown = set(given) - set(choices)
    if unknown:
        raise ValueError(f"{node.id!r} has no branch to {', '.join(sorted(unknown))} (it has: {', '.join(choices)})")
    if node.kind == NodeKind.EXCLUSIVE:
        rest = [c for c in choices if c not in given]
        total = sum(given.values())
        if total > 1 + 1e-9 or (not rest and total <= 0):
            raise ValueError(f"the branch probabilities of {node.id!r} must add up to 1, not {total:g}")
        if not rest and abs(total - 1) > 1e-6:
            warnings.append(f"{node.id}: branch probabilities add up to {total:g}; scaled to 1")
            return {c: given[c] / total for c in choices}
        share = (1 - total) / len(rest) if rest else 0.0
        return {c: given.get(c, share) for c in choices}
    if node.kind == NodeKind.INCLUSIVE:
        # each non-default flow fires on its own; the default fires when none of them does
        return {c: given.get(c, 0.5) for c in choices if c != node.default_output}
    # boundary events of a task
    probabilities = {c: given.get(c, 0.0) for c in choices}
    return probabilities
