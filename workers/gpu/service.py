"""The gpu pool's operations over warm models: classify, embed, similarity.

Each model named in the registry is loaded on first use (the default one when the worker starts),
kept for the life of the process, and served through its own dynamic batcher; all passes run on
one device thread. Results are plain JSON and always say which model (name and weights hash),
on which device, produced them.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.gpu.batching import BatchPolicy, DynamicBatcher, Pending, Rows
from workers.gpu.model import ModelInfo, ServableModel
from workers.gpu.registry import ModelRegistry, ModelSpec, load_registry, registry_file

DEFAULT_TEMPERATURE = 0.05  # softmax over cosines: 0.05 turns a 0.1 cosine lead into ~e² odds
_CACHE_SIZE = 2048  # label descriptions and candidates recur across requests: embed them once
_DIGITS = 6  # floats in results: enough for any decision, and half the JSON of a full float


class BadRequest(ValueError):
    """The request does not fit the model or the operation (the caller's fault, never retried)."""


@dataclass
class Tracker:
    """The requests an operation submitted, for heartbeats to report progress."""

    pending: list[Pending] = field(default_factory=list)

    def details(self) -> dict[str, int]:
        return {"texts": sum(len(p.texts) for p in self.pending), "done": sum(p.done for p in self.pending)}


class ServedModel:
    def __init__(self, encoder: ServableModel, batcher: DynamicBatcher, pool: str = "gpu") -> None:
        self.encoder = encoder
        self.pool = pool
        self.info: ModelInfo = encoder.info
        self.batcher = batcher
        self._cache: OrderedDict[str, Rows] = OrderedDict()

    async def rows(self, texts: list[str], tracker: Tracker, *, cached: list[str] | None = None) -> Rows:
        """Rows for `texts` (always computed) followed by rows for `cached` (from the cache when seen
        before), computed together in one request so they share passes."""
        cached = cached or []
        # a snapshot: other requests may evict entries while this one waits for its pass
        known = {text: self._cache[text] for text in cached if text in self._cache}
        missing = list(dict.fromkeys(text for text in cached if text not in known))
        pending = self.batcher.submit(texts + missing)
        tracker.pending.append(pending)
        computed = await self.batcher.result(pending)
        known.update(zip(missing, computed[len(texts) :], strict=True))
        for text in cached:
            self._cache[text] = known[text]
            self._cache.move_to_end(text)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        head = computed[: len(texts)]
        return np.concatenate([head, np.stack([known[text] for text in cached])]) if cached else head

    def describe(self, batch_size: int, started: float) -> dict[str, Any]:
        described: dict[str, Any] = {
            "pool": self.pool,
            "model": self.info.name,
            "revision": self.info.revision,
            "device": self.info.device,
            "dtype": self.info.dtype,
            "batch_size": batch_size,  # the largest pass the request's texts shared
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if self.info.quantization:
            described["quantization"] = self.info.quantization
            described["source_revision"] = self.info.source_revision
        return described


def load_with_torch(spec: ModelSpec) -> ServableModel:
    """The gpu pool's loader: the model in torch on its device (imported here, so that a service
    given another loader, as the edge pool's is, never imports torch)."""
    from workers.gpu.encoder import Encoder

    return Encoder(spec)


class InferenceService:
    def __init__(
        self,
        *,
        policy: BatchPolicy | None = None,
        registry: Path | None = None,
        loader: Callable[[ModelSpec], ServableModel] = load_with_torch,
        pool: str = "gpu",
    ) -> None:
        self.policy = policy or BatchPolicy()
        self._loader = loader
        self.pool = pool  # the pool's prefix: names its operations in messages and results
        self._registry_file = registry or registry_file()
        self._registry: ModelRegistry | None = None
        self._registry_mtime = 0.0
        # One device thread: passes of every model queue here, never interleaving on the device.
        self._device = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{pool}-device")
        self._models: dict[str, ServedModel] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    def registry(self) -> ModelRegistry:
        """The registry, re-read when its file changes: a model added there is served without a restart."""
        mtime = self._registry_file.stat().st_mtime if self._registry_file.exists() else 0.0
        if self._registry is None or mtime != self._registry_mtime:
            self._registry = load_registry(self._registry_file)
            self._registry_mtime = mtime
        return self._registry

    async def model(self, name: str | None = None) -> ServedModel:
        spec = self.registry().get(name)
        served = self._models.get(spec.name)
        if served is not None and served.encoder.spec == spec:
            return served
        lock = self._loading.setdefault(spec.name, asyncio.Lock())
        async with lock:  # concurrent first requests load it once
            served = self._models.get(spec.name)
            if served is None or served.encoder.spec != spec:  # new, or its registry entry changed
                served = await self._load(spec)
                self._models[spec.name] = served
        return served

    async def _load(self, spec: ModelSpec) -> ServedModel:
        encoder = await asyncio.get_running_loop().run_in_executor(self._device, self._loader, spec)
        return ServedModel(encoder, DynamicBatcher(encoder.forward, self.policy, self._device), self.pool)

    def loaded(self) -> dict[str, ServedModel]:
        return dict(self._models)

    async def aclose(self) -> None:
        for served in self._models.values():
            await served.batcher.aclose()
        self._device.shutdown(wait=False, cancel_futures=True)

    async def _embedding_model(self, name: str | None, operation: str) -> ServedModel:
        served = await self.model(name)
        if served.info.task != "embedding":
            info = served.info
            raise BadRequest(f"model '{info.name}' is a {info.task} model; {operation} needs an embedding model")
        return served

    # operations -----------------------------------------------------------------------------------

    async def embed(
        self, texts: list[str], *, model: str | None = None, tracker: Tracker | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        served = await self._embedding_model(model, f"{self.pool}.embed")
        tracker = tracker or Tracker()
        rows = await served.rows(texts, tracker)
        return {
            **served.describe(tracker.pending[-1].largest_pass, started),
            "dimensions": served.info.dimensions,
            "vectors": [_floats(row) for row in rows],
        }

    async def similarity(
        self, text: str, candidates: list[str], *, model: str | None = None, tracker: Tracker | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        served = await self._embedding_model(model, f"{self.pool}.similarity")
        tracker = tracker or Tracker()
        rows = await served.rows([text], tracker, cached=candidates)
        scores = _cosines(rows[0], rows[1:])
        best = int(np.argmax(scores))
        return {
            **served.describe(tracker.pending[-1].largest_pass, started),
            "scores": _floats(scores),
            "best": best,
            "best_candidate": candidates[best],
            "best_score": round(float(scores[best]), _DIGITS),
        }

    async def classify(
        self,
        text: str,
        labels: dict[str, str] | None,
        *,
        model: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        tracker: Tracker | None = None,
    ) -> dict[str, Any]:
        """Zero-shot over `labels` (label → description) by embedding similarity, or the model's own
        classification head (optionally restricted to `labels`)."""
        started = time.perf_counter()
        served = await self.model(model)
        tracker = tracker or Tracker()
        result: dict[str, Any]
        if served.info.task == "classification":
            head = served.info.labels or ()
            wanted = list(labels) if labels else list(head)
            unknown = [label for label in wanted if label not in head]
            if unknown:
                raise BadRequest(f"model '{served.info.name}' has no label(s) {unknown}; its labels: {list(head)}")
            probabilities = (await served.rows([text], tracker))[0]
            picked = np.array([probabilities[head.index(label)] for label in wanted], dtype=np.float64)
            picked = picked / picked.sum() if picked.sum() > 0 else picked
            result = {"method": "classification-head", "scores": dict(zip(wanted, _floats(picked), strict=True))}
        else:
            if not labels:
                raise BadRequest(f"model '{served.info.name}' has no classification head: give 'labels' to choose from")
            rows = await served.rows([text], tracker, cached=list(labels.values()))
            cosines = _cosines(rows[0], rows[1:])
            picked = _softmax(cosines / temperature)
            result = {
                "method": "embedding-similarity",
                "scores": dict(zip(labels, _floats(picked), strict=True)),
                "similarities": dict(zip(labels, _floats(cosines), strict=True)),
            }
        best = int(np.argmax(picked))
        label = list(result["scores"])[best]
        return {
            **served.describe(tracker.pending[-1].largest_pass, started),
            "label": label,
            "score": result["scores"][label],
            **result,
        }


def _cosines(vector: Rows, matrix: Rows) -> np.ndarray[Any, np.dtype[np.float64]]:
    v = vector.astype(np.float64)
    m = matrix.astype(np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(v)
    result: np.ndarray[Any, np.dtype[np.float64]] = (m @ v) / np.maximum(norms, 1e-12)
    return result


def _softmax(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    shifted = np.exp(values - values.max())
    result: np.ndarray[Any, np.dtype[np.float64]] = shifted / shifted.sum()
    return result


def _floats(values: Any) -> list[float]:
    return [round(float(v), _DIGITS) for v in values]
