"""Int8 model artifacts: where they live, what their manifest says, building one when missing.

An artifact is a directory holding `model.int8.onnx`, the model's `tokenizer.json` and a
`manifest.json` that names the registry model and the exact fp32 weights it was made from. It is
keyed by that weights hash, so changing the weights builds a new one; an edge site can be given a
ready artifact directory (AIMATRIX_EDGE_MODELS_DIR) and never build at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimatrix.settings import get_settings
from workers.gpu.model import ModelLoadError, weights_revision
from workers.gpu.registry import ModelSpec

FORMAT = 1
MODEL_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
CACHE_ENV = "AIMATRIX_EDGE_MODELS_DIR"
_BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Manifest:
    model: str
    task: str
    source_revision: str  # sha256 of the fp32 weights it was quantised from
    revision: str  # sha256 of model.int8.onnx
    quantization: str
    pooling: str
    normalize: bool
    max_length: int
    dimensions: int
    labels: list[str] | None
    output: str  # the ONNX output read: last_hidden_state | logits
    pad_token: str
    pad_id: int
    format: int = FORMAT

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        raw: dict[str, Any] = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        return cls(**raw)


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else get_settings().data_dir / "edge-models"


def artifact_dir(spec: ModelSpec, cache: Path) -> Path:
    source = spec.revision or weights_revision(spec.path)
    return cache / f"{spec.name}-{source.removeprefix('sha256:')[:16]}-int8"


def is_complete(directory: Path) -> bool:
    # the manifest is written last (and the directory renamed into place), so it marks a whole build
    try:
        return Manifest.read(directory).format == FORMAT and (directory / MODEL_FILE).is_file()
    except (OSError, ValueError, TypeError):
        return False


def ensure(spec: ModelSpec, cache: Path | None = None) -> Path:
    """The artifact directory for `spec`, built first if missing.

    The build runs in a child process: it needs torch (to export the fp32 model to ONNX), and the
    serving process must not carry torch's memory for the rest of its life.
    """
    if not spec.available:
        raise ModelLoadError(f"model '{spec.name}': {spec.path} is not a model directory (no config.json)")
    cache = cache or cache_dir()
    directory = artifact_dir(spec, cache)
    if is_complete(directory):
        return directory
    cache.mkdir(parents=True, exist_ok=True)
    spec_json = json.dumps({**dataclasses.asdict(spec), "path": str(spec.path)})
    command = [sys.executable, "-m", "workers.edge.quantize", "--spec", spec_json, "--out", str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ModelLoadError(
            f"model '{spec.name}': building its int8 artifact took over {_BUILD_TIMEOUT_S} s"
        ) from None
    if done.returncode != 0 or not is_complete(directory):
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ModelLoadError(f"model '{spec.name}': its int8 artifact could not be built: {' | '.join(tail)}")
    return directory


def spec_from_json(text: str) -> ModelSpec:
    raw = json.loads(text)
    return ModelSpec(**{**raw, "path": Path(raw["path"])})
