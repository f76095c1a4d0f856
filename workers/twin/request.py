"""A simulation request, as the API, the CLI and a `twin.simulate` service task send it.

    {"definition_key": "order_approval", "version": 3,          # default: the latest version
     "horizon": "P30D",                                          # simulated time per replication
     "replications": 20, "seed": 1,
     "calibrate_from": "P30D",                                   # fit from this much audit history
     "overrides": {"arrival_rate_per_s": 0.01, "capacities": {"group:approvers": 2}, ...},
     "sla": "PT4H"}

Durations are ISO 8601 (PT30S, P7D) or seconds. `calibrate_from` is a duration back from now or
"all"; without it only the model's defaults and the overrides are used. Dependency-light (no
salabim): the API validates with it before it starts anything, so a bad request is a 422 at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bpmn.activity_options import duration_seconds
from workers.twin.params import SimulationParams

MAX_REPLICATIONS = 500
_FIELDS = {"definition_key", "version", "horizon", "replications", "seed", "calibrate_from", "overrides", "sla"}


class BadRequest(ValueError):
    """Names the field and what is wrong with it."""


@dataclass(frozen=True)
class SimulationRequest:
    definition_key: str
    version: int | None = None
    horizon_s: float = 7 * 86400.0
    replications: int = 10
    seed: int = 1
    calibrate_from_s: float | None = None  # None: no calibration; inf: the whole history
    overrides: SimulationParams = field(default_factory=SimulationParams)
    raw_overrides: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def parse(body: dict[str, Any]) -> SimulationRequest:
        unknown = set(body) - _FIELDS
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_FIELDS))}")
        key = body.get("definition_key")
        if not isinstance(key, str) or not key.strip():
            raise BadRequest("'definition_key' must name a deployed definition")
        version = body.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise BadRequest(f"'version' must be a positive whole number, got {version!r}")
        replications = _integer(body, "replications", 10, 1, MAX_REPLICATIONS)
        seed = _integer(body, "seed", 1, 0, 2**32 - 1)
        horizon = _duration(body, "horizon", 7 * 86400.0)  # at most 365 days, as every duration
        calibrate = body.get("calibrate_from")
        calibrate_s = float("inf") if calibrate == "all" else _duration(body, "calibrate_from", None)
        raw = body.get("overrides") or {}
        if not isinstance(raw, dict):
            raise BadRequest("'overrides' must be an object")
        sla = body.get("sla")
        if sla is not None:
            raw = {**raw, "sla_s": _duration(body, "sla", None)}
        try:
            overrides = SimulationParams.from_dict(raw)
        except (ValueError, TypeError, KeyError) as err:
            raise BadRequest(f"'overrides': {err}") from None
        return SimulationRequest(key, version, horizon, replications, seed, calibrate_s, overrides, dict(raw))


def _integer(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}, got {value!r}")
    return value


def _duration(body: dict[str, Any], name: str, default: float | None) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadRequest(f"'{name}' must be an ISO 8601 duration (e.g. P30D) or seconds, got {value!r}")
    try:
        return duration_seconds(f"'{name}'", str(value))
    except ValueError as err:
        raise BadRequest(str(err)) from None
