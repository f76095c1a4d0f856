"""What a Monte Carlo run reports: estimates with confidence intervals, over replications.

Each replication is one independent run; a figure's estimate is the mean of its per-replication
values, and its 95 % confidence interval is Student's t over those values (replications are
independent, the events within one are not, which is why the interval is not taken over events).
Cycle-time percentiles are also taken over all replications' instances pooled, for the histogram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.twin.engine import ReplicationOutcome

# Student's t, 97.5th percentile, by degrees of freedom 1…30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    if df < 1:
        return math.inf
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df  # within 0.1 % above 30


@dataclass(frozen=True)
class Estimate:
    mean: float
    ci_low: float
    ci_high: float
    n: int  # replications it is over

    @staticmethod
    def of(values: Sequence[float]) -> Estimate:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return Estimate(math.nan, math.nan, math.nan, 0)
        mean = float(np.mean(finite))
        if len(finite) < 2:
            return Estimate(mean, math.nan, math.nan, len(finite))
        half = t975(len(finite) - 1) * float(np.std(finite, ddof=1)) / math.sqrt(len(finite))
        # every figure estimated here (times, rates, utilisations, queues, probabilities) is non-negative:
        # a t interval reaching below zero (few replications of a skewed figure) stops at zero
        return Estimate(mean, max(0.0, mean - half), mean + half, len(finite))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _json(self.mean), "ci95": [_json(self.ci_low), _json(self.ci_high)], "n": self.n}


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


@dataclass
class SimulationResult:
    process_id: str
    replications: int
    horizon_s: float
    warmup_s: float
    seed: int
    instances: int  # started after the warm-up, over all replications
    unfinished: int  # of those, still running when their replication stopped
    cycle_time: dict[str, Estimate]  # mean, p50, p90, p99 (seconds)
    cycle_time_pooled: dict[str, float]  # the same percentiles over every instance of every replication
    histogram: dict[str, list[float]]  # edges (seconds), counts
    throughput_per_hour: Estimate
    resources: dict[str, dict[str, Any]]  # id → capacity, utilisation, mean_queue_length, mean_wait_s
    elements: dict[str, dict[str, Any]]  # id → visits_per_instance, mean_wait_s, mean_service_s, resource
    bottleneck: dict[str, Any] | None
    sla: dict[str, Any] | None  # sla_s, breach_probability
    parameters: dict[str, Any]  # every value the run used, with its source
    events: int
    wall_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "replications": self.replications,
            "horizon_s": self.horizon_s,
            "warmup_s": self.warmup_s,
            "seed": self.seed,
            "instances": self.instances,
            "unfinished": self.unfinished,
            "cycle_time_s": {k: v.to_dict() for k, v in self.cycle_time.items()},
            "cycle_time_pooled_s": {k: _json(v) for k, v in self.cycle_time_pooled.items()},
            "histogram": {k: list(v) for k, v in self.histogram.items()},
            "throughput_per_hour": self.throughput_per_hour.to_dict(),
            "resources": {k: _plain(v) for k, v in self.resources.items()},
            "elements": {k: _plain(v) for k, v in self.elements.items()},
            "bottleneck": _plain(self.bottleneck) if self.bottleneck else None,
            "sla": _plain(self.sla) if self.sla else None,
            "parameters": self.parameters,
            "events": self.events,
            "wall_s": self.wall_s,
            "events_per_s": _json(self.events_per_s),
            "warnings": list(self.warnings),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Estimate):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return _json(value)
    return value


_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def cycle_time_estimates(outcomes: Sequence[ReplicationOutcome]) -> dict[str, Estimate]:
    estimates = {
        "mean": Estimate.of([float(o.cycle_times.mean()) if o.cycle_times.size else math.nan for o in outcomes])
    }
    for name, q in _PERCENTILES.items():
        estimates[name] = Estimate.of(
            [float(np.percentile(o.cycle_times, q)) if o.cycle_times.size else math.nan for o in outcomes]
        )
    return estimates


def pooled_cycle_times(
    outcomes: Sequence[ReplicationOutcome], bins: int = 40
) -> tuple[dict[str, float], dict[str, list[float]]]:
    pooled = np.concatenate([o.cycle_times for o in outcomes]) if outcomes else np.empty(0)
    if pooled.size == 0:
        return {"mean": math.nan, **dict.fromkeys(_PERCENTILES, math.nan)}, {"edges": [], "counts": []}
    summary = {"mean": float(pooled.mean()), **{k: float(np.percentile(pooled, q)) for k, q in _PERCENTILES.items()}}
    # up to the 99.9th percentile: one extreme instance would otherwise squeeze every bar into the first
    top = float(np.percentile(pooled, 99.9))
    low = float(pooled.min())
    if top - low <= 1e-9 * max(1.0, abs(low)):  # all (nearly) the same: one visible bar
        top = low + max(1.0, abs(low) * 0.01)
    counts, edges = np.histogram(np.clip(pooled, low, top), bins=bins, range=(low, top))
    return summary, {"edges": edges.tolist(), "counts": [float(c) for c in counts]}
