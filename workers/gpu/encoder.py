"""One registry model on its device: loading it once, and one forward pass over a batch of texts.

The only module of the platform that imports torch and transformers; the gpu worker process alone
imports it (through `workers.gpu.service`).
"""

from __future__ import annotations

import os

# Read by huggingface_hub and transformers when they are imported, so set first. The registry names
# local directories only: a request that would reach the hub is a bug to fail on, never a download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from workers.gpu.model import ModelInfo, ModelLoadError, Rows, pooling_of, weights_revision
from workers.gpu.registry import ModelSpec

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()  # a progress bar per load in a worker's log is noise

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(policy: str) -> torch.device:
    if policy == "cpu":
        return torch.device("cpu")
    cuda = torch.cuda.is_available()
    if policy.startswith("cuda"):
        if not cuda:
            raise ModelLoadError(f"device policy '{policy}' needs a CUDA GPU and this worker has none")
        return torch.device(policy)
    return torch.device("cuda" if cuda else "cpu")


def pick_dtype(device: torch.device, policy: str) -> torch.dtype:
    if policy != "auto":
        return _DTYPES[policy]
    # Half precision halves memory traffic and runs on the tensor cores; CPUs (AVX2) have no fast fp16.
    return torch.float16 if device.type == "cuda" else torch.float32


class Encoder:
    """A loaded model. `forward` is blocking and not thread-safe: one thread (the worker's device
    thread) calls it, so passes never interleave on the device."""

    def __init__(self, spec: ModelSpec) -> None:
        if not spec.available:
            raise ModelLoadError(f"model '{spec.name}': {spec.path} is not a model directory (no config.json)")
        self.spec = spec
        self.device = pick_device(spec.device)
        self.dtype = pick_dtype(self.device, spec.dtype)
        self.pooling = pooling_of(spec)
        try:
            config = AutoConfig.from_pretrained(spec.path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(spec.path, local_files_only=True)
            loader = AutoModelForSequenceClassification if spec.task == "classification" else AutoModel
            model = loader.from_pretrained(spec.path, local_files_only=True, dtype=self.dtype)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"model '{spec.name}' cannot be loaded from {spec.path}: {err}") from err
        self.model = model.to(self.device).eval()
        limit = int(getattr(self.tokenizer, "model_max_length", 512) or 512)
        self.max_length = spec.max_length or min(limit, 512)
        labels: tuple[str, ...] | None = None
        if spec.task == "classification":
            labels = tuple(str(config.id2label[i]) for i in range(int(config.num_labels)))
        self.info = ModelInfo(
            name=spec.name,
            revision=spec.revision or weights_revision(spec.path),
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            task=spec.task,
            labels=labels,
            dimensions=len(labels) if labels else int(config.hidden_size),
        )
        self.forward(["warm-up"])  # the first pass allocates and picks kernels: not on a request's time

    def forward(self, texts: list[str]) -> Rows:
        """Embeddings (pooled, normalised as configured) or class probabilities, one row per text.

        Padding never changes a row: the attention mask hides it from the model and from the pooling,
        which is what makes a batched row equal the same text's row computed alone.
        """
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        inputs: dict[str, Any] = {name: tensor.to(self.device) for name, tensor in batch.items()}
        with torch.inference_mode():
            output = self.model(**inputs)
            if self.spec.task == "classification":
                rows = torch.softmax(output.logits.float(), dim=-1)
            else:
                hidden = output.last_hidden_state.float()
                if self.pooling == "cls":
                    rows = hidden[:, 0]
                else:
                    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    rows = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if self.spec.normalize:
                    rows = torch.nn.functional.normalize(rows, dim=-1)
        result: Rows = rows.cpu().numpy().astype(np.float32, copy=False)
        return result
