"""Monte Carlo over the salabim model: the entry point a Temporal activity calls.

    result = simulate(model, params, replications=20, horizon_s=30 * 86400, seed=7,
                      progress=heartbeat, cancelled=lambda: cancel_requested)
    result.to_dict()  # JSON for the API

Replications get independent random streams spawned from `seed` (numpy's SeedSequence), so a seed
gives the same result every time, and adding replications keeps the first ones as they were.
`progress(fraction)` is called about a hundred times per replication and after each; `cancelled()`
is checked at the same moments, and a True stops the run with `SimulationCancelled`. Both run on the
simulating thread: an activity heartbeats from `progress` and reads its cancellation in `cancelled`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from workers.twin.engine import ReplicationOutcome, SimulationCancelled, ZeroTimeLoopError, run_replication
from workers.twin.model import ProcessModel
from workers.twin.params import SimulationParams, resolve
from workers.twin.results import Estimate, SimulationResult, cycle_time_estimates, pooled_cycle_times

__all__ = ["SimulationCancelled", "ZeroTimeLoopError", "simulate"]


def simulate(
    model: ProcessModel,
    params: SimulationParams,
    *,
    replications: int,
    horizon_s: float,
    seed: int,
    drain_s: float | None = None,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> SimulationResult:
    """Run `replications` independent replications of `horizon_s` simulated seconds each.

    Instances arrive until the horizon; those still running then may finish during up to `drain_s`
    more (default: another horizon), so that long instances are not cut from the cycle times. Figures
    cover instances that started after the warm-up (`params.warmup_s`); utilisation and throughput
    cover the window from the warm-up to the horizon.
    """
    if replications < 1:
        raise ValueError("replications must be at least 1")
    if not math.isfinite(horizon_s) or horizon_s <= 0:
        raise ValueError("horizon_s must be a positive number of seconds")
    resolved = resolve(model, params)
    if resolved.warmup_s >= horizon_s:
        raise ValueError("the warm-up must end before the horizon")
    drain = horizon_s if drain_s is None else drain_s
    streams = np.random.SeedSequence(seed).spawn(replications)
    outcomes: list[ReplicationOutcome] = []
    started = time.perf_counter()

    for number, stream in enumerate(streams):

        def tick(fraction: float, done: int = number) -> None:
            if cancelled is not None and cancelled():
                raise SimulationCancelled(f"cancelled during replication {done + 1} of {replications}")
            if progress is not None:
                progress((done + fraction) / replications)

        tick(0.0)
        outcomes.append(run_replication(model, resolved, horizon_s=horizon_s, drain_s=drain, seed=stream, tick=tick))
        if progress is not None:
            progress((number + 1) / replications)
    wall = time.perf_counter() - started

    pooled, histogram = pooled_cycle_times(outcomes)
    resources = _resources(outcomes, resolved.capacities)
    elements = _elements(model, outcomes)
    warnings = list(dict.fromkeys(resolved.warnings))
    unfinished = sum(o.unfinished for o in outcomes)
    if unfinished:
        warnings.append(
            f"{unfinished} instances were still running when their replication stopped: the system may be "
            "overloaded (utilisation near 1) or the drain too short; they are missing from the cycle times"
        )
    return SimulationResult(
        process_id=model.process_id,
        replications=replications,
        horizon_s=horizon_s,
        warmup_s=resolved.warmup_s,
        seed=seed,
        instances=sum(o.started for o in outcomes),
        unfinished=unfinished,
        cycle_time=cycle_time_estimates(outcomes),
        cycle_time_pooled=pooled,
        histogram=histogram,
        throughput_per_hour=Estimate.of([3600 * o.completed_in_window / o.window_s for o in outcomes]),
        resources=resources,
        elements=elements,
        bottleneck=_bottleneck(resources, elements),
        sla=_sla(outcomes, resolved.sla_s),
        parameters=resolved.to_dict(),
        events=sum(o.events for o in outcomes),
        wall_s=wall,
        warnings=warnings,
    )


def _resources(outcomes: list[ReplicationOutcome], capacities: dict[str, int | None]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for resource, capacity in capacities.items():
        if capacity is None:
            found[resource] = {"capacity": None, "utilisation": None, "mean_queue_length": 0.0}
            continue
        found[resource] = {
            "capacity": capacity,
            "utilisation": Estimate.of([o.utilisation.get(resource, 0.0) for o in outcomes]),
            "mean_queue_length": Estimate.of([o.queue_length.get(resource, 0.0) for o in outcomes]),
        }
    return found


def _elements(model: ProcessModel, outcomes: list[ReplicationOutcome]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for element in model.timed_elements():
        per_instance, waits, services = [], [], []
        for o in outcomes:
            visits = o.visits.get(element, 0)
            per_instance.append(visits / o.started if o.started else 0.0)
            waits.append(o.wait_s.get(element, 0.0) / visits if visits else math.nan)
            services.append(o.service_s.get(element, 0.0) / visits if visits else math.nan)
        if not any(per_instance):
            continue
        found[element] = {
            "resource": model.nodes[element].resource,
            "visits_per_instance": Estimate.of(per_instance),
            "mean_wait_s": Estimate.of(waits),
            "mean_service_s": Estimate.of(services),
            # what the element adds to an average instance's life, queueing included
            "time_per_instance_s": Estimate.of(
                [
                    (o.wait_s.get(element, 0.0) + o.service_s.get(element, 0.0)) / o.started if o.started else 0.0
                    for o in outcomes
                ]
            ),
        }
    return found


def _bottleneck(
    resources: dict[str, dict[str, object]], elements: dict[str, dict[str, object]]
) -> dict[str, object] | None:
    """The busiest resource, and the element where instances lose the most time waiting (or, with no
    waiting anywhere, spend the most time)."""
    if not elements:
        return None

    def mean(value: object) -> float:
        return value.mean if isinstance(value, Estimate) and math.isfinite(value.mean) else 0.0

    def waiting(element: str) -> float:
        info = elements[element]
        return mean(info["visits_per_instance"]) * mean(info["mean_wait_s"])

    element = max(elements, key=waiting)
    measure = "waiting"
    if waiting(element) <= 0:
        element = max(elements, key=lambda e: mean(elements[e]["time_per_instance_s"]))
        measure = "time"
    busiest = max(
        (r for r, info in resources.items() if isinstance(info["utilisation"], Estimate)),
        key=lambda r: mean(resources[r]["utilisation"]),
        default=None,
    )
    return {
        "element": element,
        "by": measure,
        "wait_per_instance_s": waiting(element),
        "resource": busiest,
        "utilisation": resources[busiest]["utilisation"] if busiest else None,
    }


def _sla(outcomes: list[ReplicationOutcome], sla_s: float | None) -> dict[str, object] | None:
    if sla_s is None:
        return None
    # an instance still running at the end has not met any SLA shorter than the run: count it as a breach
    fractions = [
        (float(np.count_nonzero(o.cycle_times > sla_s)) + o.unfinished) / (o.cycle_times.size + o.unfinished)
        for o in outcomes
        if o.cycle_times.size + o.unfinished
    ]
    return {"sla_s": sla_s, "breach_probability": Estimate.of(fractions)}
