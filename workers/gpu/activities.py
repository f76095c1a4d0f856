"""The gpu pool's Temporal activities: `gpu.classify`, `gpu.embed`, `gpu.similarity`.

Parameters come from the service task (`ServiceTaskInput.params`); `model` picks a registry model
(default: the registry's default). Requests that cannot succeed (bad parameters, unknown model, no
GPU for a cuda-only model) fail at once and are not retried; anything else is retried by Temporal.

While a request computes, the activity heartbeats with its progress. Cancellation (an interrupting
boundary event, a cancelled instance) reaches an activity through its next heartbeat; the request
is then withdrawn from the batcher, so texts that have not run yet never run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workers.gpu.contracts import (
    BAD_PARAMETER,
    GPU_CLASSIFY_ACTIVITY,
    GPU_EMBED_ACTIVITY,
    GPU_SIMILARITY_ACTIVITY,
    MODEL_UNAVAILABLE,
)
from workers.gpu.model import ModelLoadError
from workers.gpu.registry import RegistryError, UnknownModelError
from workers.gpu.service import DEFAULT_TEMPERATURE, BadRequest, InferenceService, Tracker
from workflows.contracts import ServiceTaskInput

T = TypeVar("T")

MAX_EMBED_TEXTS = 256  # 256 vectors of 384 floats ≈ 1 MB of JSON: Temporal caps a payload at 2 MB
MAX_CANDIDATES = 4096
MAX_LABELS = 256
_HEARTBEAT_EVERY = 10.0  # seconds, when the task sets no heartbeat timeout (cancellation still needs them)


class GpuActivities:
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    @activity.defn(name=GPU_CLASSIFY_ACTIVITY)
    async def classify(self, inp: ServiceTaskInput) -> dict[str, Any]:
        params = inp.params
        text = _text(params, "text")
        labels = _labels(params)
        temperature = _number(params, "temperature", DEFAULT_TEMPERATURE, 1e-3, 10.0)
        tracker = Tracker()
        return await _serve(
            self.service.classify(text, labels, model=_model(params), temperature=temperature, tracker=tracker),
            tracker,
        )

    @activity.defn(name=GPU_EMBED_ACTIVITY)
    async def embed(self, inp: ServiceTaskInput) -> dict[str, Any]:
        params = inp.params
        single = "texts" not in params
        texts = [_text(params, "text")] if single else _texts(params, "texts", MAX_EMBED_TEXTS)
        tracker = Tracker()
        result = await _serve(self.service.embed(texts, model=_model(params), tracker=tracker), tracker)
        if single:
            result["vector"] = result.pop("vectors")[0]
        return result

    @activity.defn(name=GPU_SIMILARITY_ACTIVITY)
    async def similarity(self, inp: ServiceTaskInput) -> dict[str, Any]:
        params = inp.params
        text = _text(params, "text")
        candidates = _texts(params, "candidates", MAX_CANDIDATES)
        tracker = Tracker()
        return await _serve(self.service.similarity(text, candidates, model=_model(params), tracker=tracker), tracker)


async def _serve(work: Awaitable[T], tracker: Tracker) -> T:
    """Await `work`, heartbeating meanwhile; failures become the errors Temporal should see."""
    try:
        return await _heartbeating(work, tracker)
    except BadRequest as err:
        raise _bad(str(err)) from None
    except (UnknownModelError, RegistryError, ModelLoadError) as err:
        raise ApplicationError(str(err), type=MODEL_UNAVAILABLE, non_retryable=True) from None


async def _heartbeating(work: Awaitable[T], tracker: Tracker) -> T:
    task = asyncio.ensure_future(work)
    timeout = activity.info().heartbeat_timeout
    # several heartbeats per timeout, so one late beat does not time the activity out
    every = max(0.1, min(timeout.total_seconds() / 3, _HEARTBEAT_EVERY)) if timeout else _HEARTBEAT_EVERY
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if task in done:
                return task.result()
            activity.heartbeat(tracker.details())
    finally:
        if not task.done():
            task.cancel()  # withdraws its request from the batcher
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _bad(message: str) -> ApplicationError:
    return ApplicationError(message, type=BAD_PARAMETER, non_retryable=True)


def _model(params: dict[str, Any]) -> str | None:
    model = params.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad(f"'model' must be the name of a registry model, got {model!r}")
    return model or None


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"'{name}' must be a non-empty string, got {_short(value)}")
    return value


def _texts(params: dict[str, Any], name: str, limit: int) -> list[str]:
    value = params.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _bad(f"'{name}' must be a non-empty list of non-empty strings, got {_short(value)}")
    if len(value) > limit:
        raise _bad(f"'{name}' holds {len(value)} texts; at most {limit} per request")
    return list(value)


def _labels(params: dict[str, Any]) -> dict[str, str] | None:
    """`labels` as label → the text its similarity is measured to: a list of labels, a comma-separated
    string, or an object of label → description (a description fits a label far better than its name)."""
    value = params.get("labels")
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        template = params.get("template") or "{label}"
        if not isinstance(template, str) or "{label}" not in template:
            raise _bad("'template' must be a string containing {label}, e.g. 'This document is {label}.'")
        labels = {label: template.replace("{label}", label) for label in value}
    elif isinstance(value, dict) and all(isinstance(v, str) and v.strip() for v in value.values()):
        labels = {str(k): v for k, v in value.items()}
    else:
        raise _bad(f"'labels' must be a list of labels or an object of label → description, got {_short(value)}")
    if not 1 <= len(labels) <= MAX_LABELS:
        raise _bad(f"'labels' must hold 1 to {MAX_LABELS} labels")
    return labels


def _number(params: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(f"'{name}' must be a number from {low} to {high}, got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
