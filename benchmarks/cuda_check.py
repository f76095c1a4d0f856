"""The gpu pool on CUDA: the device and dtype it picks, batched rows against rows computed alone, and
fp16 against an fp32 pass on the same GPU. Run on a GPU machine: `python -m benchmarks.cuda_check`
(on a CPU it runs too, in float32). The H100 run's output is in BENCHMARKS.md."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import torch

from benchmarks.bench_inference import LABELS, documents
from workers.gpu.batching import BatchPolicy
from workers.gpu.encoder import Encoder
from workers.gpu.service import InferenceService


async def main() -> None:
    on = InferenceService(policy=BatchPolicy())
    off = InferenceService(policy=BatchPolicy(enabled=False))
    texts = documents(64, seed=11)
    served = await on.model()
    await off.model()
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "-"
    print("device", served.info.device, "dtype", served.info.dtype, "gpu", card)
    batched = await asyncio.gather(*(on.embed([t]) for t in texts))
    alone = [await off.embed([t]) for t in texts]
    a = np.array([r["vectors"][0] for r in batched])
    b = np.array([r["vectors"][0] for r in alone])
    largest = max(r["batch_size"] for r in batched)
    spread = float(np.abs(a - b).max())
    print("largest pass", largest, "max |batched-alone|", spread, "min cosine", float((a * b).sum(1).min()))
    reference = Encoder(dataclasses.replace(served.encoder.spec, dtype="float32")).forward(texts)
    print("fp16 vs fp32 min cosine", float((a * reference).sum(1).min()), "max abs", float(np.abs(a - reference).max()))
    together = await on.classify(texts[0], LABELS)
    single = await off.classify(texts[0], LABELS)
    print("classify", together["label"], together["score"], together["device"], together["dtype"], "| alone",
          single["label"], single["score"])  # fmt: skip
    await on.aclose()
    await off.aclose()


if __name__ == "__main__":
    asyncio.run(main())
