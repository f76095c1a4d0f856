"""Per-task overrides of a pool's timeouts, retries and backoff, written in the model.

A pool's defaults fit most of its operations; a model overrides them for one task with task headers
(Camunda Modeler: `zeebe:taskHeaders`) or extension properties (SpiffArena: `spiffworkflow:properties`)
named `aimatrix.*`. They are read when the model is parsed, so a bad value is a 422 at deploy naming
the element, and they live in the deployed (hashed, immutable) files, so replays see the same ones.
"""

from __future__ import annotations

import re
from datetime import timedelta

# header → OperatorRoute field
DURATIONS = {
    "aimatrix.timeout": "start_to_close_seconds",
    "aimatrix.scheduleToCloseTimeout": "schedule_to_close_seconds",
    "aimatrix.heartbeatTimeout": "heartbeat_seconds",
    "aimatrix.retryBackoff": "initial_interval_seconds",
    # per-site pools (edge): how long a task waits for a worker of its site before it falls back
    "aimatrix.scheduleToStartTimeout": "schedule_to_start_seconds",
}
COEFFICIENT = "aimatrix.backoffCoefficient"
RETRIES = "aimatrix.retries"
# `off`: a per-site task never leaves its site (the data must stay there); it waits for a worker there
FALLBACK = "aimatrix.fallback"
NAMES = frozenset({*DURATIONS, COEFFICIENT, RETRIES, FALLBACK})

_MAX = timedelta(days=365)
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse(values: dict[str, str]) -> tuple[dict[str, float | None], int | None]:
    """The route overrides and the retry count in `values` (only `aimatrix.*` names are read).

    Raises ValueError naming the header and what is wrong with its value.
    """
    options: dict[str, float | None] = {}
    retries: int | None = None
    for name, raw in values.items():
        if not name.startswith("aimatrix."):
            continue
        value = raw.strip()
        if name in DURATIONS:
            options[DURATIONS[name]] = duration_seconds(name, value)  # overrides a default set by `fallback`
        elif name == COEFFICIENT:
            try:
                coefficient = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number ≥ 1, not {raw!r}") from None
            if not 1 <= coefficient <= 100:
                raise ValueError(f"{name} must be a number from 1 to 100, not {raw!r}")
            options["backoff"] = coefficient
        elif name == FALLBACK:
            if value.lower() not in ("off", "on"):
                raise ValueError(f"{name} must be 'on' (the default) or 'off', not {raw!r}")
            if value.lower() == "off":
                options["fallback_operator"] = None
                options["fallback_task_queue"] = None
                # it waits at its site for as long as it takes, unless the model sets how long
                options.setdefault("schedule_to_start_seconds", None)
        elif name == RETRIES:
            if not value.isdigit() or int(value) > 100:
                raise ValueError(f"{name} must be a whole number from 0 to 100, not {raw!r}")
            retries = int(value)
        else:
            known = ", ".join(sorted(NAMES))
            raise ValueError(f"unknown setting {name!r}; the aimatrix.* settings are {known}")
    return options, retries


def duration_seconds(name: str, value: str) -> float:
    """An ISO 8601 duration (PT30S, PT5M, P1D) or a number of seconds."""
    match = _DURATION.match(value.upper())
    if match:
        parts = {unit: float(amount) for unit, amount in match.groupdict().items() if amount}
        duration = timedelta(**parts)
    else:
        try:
            duration = timedelta(seconds=float(value))
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 duration such as PT30S, not {value!r}") from None
    if not timedelta(0) < duration <= _MAX:
        raise ValueError(f"{name} must be more than zero and at most 365 days, not {value!r}")
    return duration.total_seconds()
