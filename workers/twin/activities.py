"""`twin.simulate`: a simulation of a deployed definition, calibrated from its audit history.

A synchronous activity (salabim runs in the calling thread and keeps one default environment per
process, so the worker runs one simulation at a time in its own thread). It heartbeats its progress
(`{"progress": 0..1, "phase": ...}`) and stops at the next check once Temporal cancels it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from store import definitions
from store.models import AuditRecord
from workers.twin.calibration import calibrate
from workers.twin.engine import SimulationCancelled, ZeroTimeLoopError
from workers.twin.model import build_model
from workers.twin.request import BadRequest, SimulationRequest
from workers.twin.simulation import simulate
from workflows.contracts import TWIN_SIMULATE_ACTIVITY, ServiceTaskInput

BAD_PARAMETER = "BadParameter"
MAX_RECORDS = 500_000  # audit rows read for one calibration: the newest ones, well within memory


class TwinActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    # Cancellation is polled (`activity.is_cancelled` between events), never thrown into the thread:
    # an exception raised asynchronously lands wherever the thread is, and salabim's own
    # `try: float(spec) except Exception` turned one into "not a proper duration", failing the
    # simulation instead of cancelling it.
    @activity.defn(name=TWIN_SIMULATE_ACTIVITY, no_thread_cancel_exception=True)
    def simulate(self, inp: ServiceTaskInput) -> dict[str, Any]:
        try:
            request = SimulationRequest.parse(inp.params)
        except BadRequest as err:
            raise _bad(str(err)) from None
        beat("loading", 0.0)
        with self._session_factory() as session:
            found = definitions.get(session, key=request.definition_key, version=request.version, tenant=inp.tenant)
            if found is None:
                label = f" version {request.version}" if request.version else ""
                raise _bad(f"'definition_key': no definition '{request.definition_key}'{label}")
            files = definitions.files(session, key=found.key, version=found.version)
            records = (
                _audit(session, found.key, inp.tenant, request.calibrate_from_s) if request.calibrate_from_s else None
            )
        try:
            model = build_model(files, found.key)
        except (ValueError, LookupError) as err:
            raise _bad(f"definition '{found.key}' v{found.version} cannot be simulated: {err}") from None
        params = request.overrides
        calibration = None
        if records is not None:
            beat("calibrating", 0.0)
            now = datetime.now(UTC)
            window = None if math.isinf(request.calibrate_from_s or 0) else (
                now - timedelta(seconds=request.calibrate_from_s or 0), now)  # fmt: skip
            calibration = calibrate(model, records, window)
            params = calibration.params().overridden_by(request.overrides)
        try:
            result = simulate(
                model, params, replications=request.replications, horizon_s=request.horizon_s, seed=request.seed,
                progress=lambda done: beat("simulating", done), cancelled=activity.is_cancelled,
            )  # fmt: skip
        except SimulationCancelled:
            raise CancelledError("simulation cancelled") from None  # what Temporal records as cancelled
        except (ValueError, ZeroTimeLoopError) as err:
            raise _bad(f"definition '{found.key}' v{found.version}: {err}") from None
        simulated = result.to_dict()
        cycle = simulated["cycle_time_s"]
        return {
            # the figures a process branches on, at the top; everything else below
            "definition_key": found.key,
            "version": found.version,
            "cycle_time_mean_s": cycle["mean"]["mean"],
            "cycle_time_p90_s": cycle["p90"]["mean"],
            "sla_breach_probability": (simulated.get("sla") or {}).get("breach_probability", {}).get("mean"),
            "bottleneck": (simulated.get("bottleneck") or {}).get("element"),
            "simulation": simulated,
            "calibration": calibration.to_dict() if calibration else None,
        }


def beat(phase: str, progress: float) -> None:
    """Progress, as the API shows it. Called ~100 times a replication: the SDK sends the latest to the
    server at most every 0.8 x the heartbeat timeout, so no throttling is needed here."""
    activity.heartbeat({"phase": phase, "progress": round(progress, 4)})


def _audit(session: Session, key: str, tenant: str | None, back_s: float) -> list[dict[str, Any]]:
    query = select(AuditRecord).where(AuditRecord.definition_key == key)
    if tenant is not None:
        query = query.where(AuditRecord.tenant == tenant)
    if not math.isinf(back_s):
        since = datetime.now(UTC) - timedelta(seconds=back_s)
        query = query.where(AuditRecord.occurred_at >= since.isoformat())  # ISO strings sort as times
    rows = session.scalars(query.order_by(AuditRecord.seq.desc()).limit(MAX_RECORDS)).all()
    fields = ("seq", "instance_id", "instance_seq", "definition_key", "occurred_at", "actor", "action", "element_id")
    return [{**{name: getattr(r, name) for name in fields}, "element_type": r.element_type} for r in reversed(rows)]


def _bad(message: str) -> ApplicationError:
    return ApplicationError(message, type=BAD_PARAMETER, non_retryable=True)
