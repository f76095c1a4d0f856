"""What every served model offers the inference service, whatever runs it (torch on the gpu pool,
ONNX Runtime on the edge pool). Dependency-free: importing it loads no model runtime."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from workers.gpu.registry import ModelSpec

Rows = npt.NDArray[np.float32]

_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_CHUNK = 1 << 20


class ModelLoadError(RuntimeError):
    """The model cannot be served by this worker: a missing directory, no GPU for a cuda-only model…"""


@dataclass(frozen=True)
class ModelInfo:
    """What every result says about the model that produced it."""

    name: str
    revision: str
    device: str
    dtype: str
    task: str
    labels: tuple[str, ...] | None  # classification models: the head's labels, in logit order
    dimensions: int  # width of a forward pass's rows (embedding size, or number of labels)
    quantization: str | None = None  # how a quantised model was derived from the registry's weights
    source_revision: str | None = None  # the registry weights it was derived from


class ServableModel(Protocol):
    """A loaded model. `forward` is blocking and called from one thread only (the device thread)."""

    spec: ModelSpec
    info: ModelInfo

    def forward(self, texts: list[str]) -> Rows:
        """Embeddings or class probabilities, one row per text; a row never depends on the batch."""
        ...


def weights_revision(path: Path) -> str:
    """sha256 over the weights file(s): names the exact weights behind every decision."""
    files = [path / name for name in _WEIGHTS if (path / name).is_file()] or sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"no weights (model.safetensors / pytorch_model.bin) in {path}")
    return sha256_of(*files)


def sha256_of(*files: Path) -> str:
    """`sha256:<hex>` over the files' bytes in order, read in chunks (weights run to gigabytes)."""
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def pooling_of(spec: ModelSpec) -> str:
    if spec.pooling:
        return spec.pooling
    # sentence-transformers directories say how their embeddings are pooled
    config = spec.path / "1_Pooling" / "config.json"
    if config.is_file():
        settings = json.loads(config.read_text(encoding="utf-8"))
        if settings.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"
