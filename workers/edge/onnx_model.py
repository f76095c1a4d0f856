"""An int8 artifact served with ONNX Runtime on the CPU: the edge pool's `ServableModel`.

Tokenisation uses the `tokenizers` library on the model's own tokenizer.json (what transformers'
fast tokenizer runs underneath), and pooling is the gpu pool's, in numpy: an edge row differs from
a gpu row only by what int8 quantisation changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from workers.edge.artifact import MODEL_FILE, TOKENIZER_FILE, Manifest
from workers.gpu.model import ModelInfo, ModelLoadError, Rows
from workers.gpu.registry import ModelSpec

THREADS_ENV = "AIMATRIX_EDGE_THREADS"


class OnnxModel:
    """`forward` is blocking and called from the service's one device thread."""

    def __init__(self, spec: ModelSpec, artifact: Path, *, threads: int | None = None) -> None:
        self.spec = spec
        try:
            self.manifest = Manifest.read(artifact)
            options = ort.SessionOptions()
            # 0: ONNX Runtime's choice (one thread per core); a site sharing its machine sets fewer
            options.intra_op_num_threads = threads if threads is not None else int(os.environ.get(THREADS_ENV, "0"))
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(artifact / MODEL_FILE), options, providers=["CPUExecutionProvider"])
            self.tokenizer = Tokenizer.from_file(str(artifact / TOKENIZER_FILE))
        except (OSError, ValueError, TypeError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as err:
            raise ModelLoadError(
                f"model '{spec.name}': the int8 artifact in {artifact} cannot be loaded: {err}"
            ) from None
        m = self.manifest
        if m.model != spec.name or m.task != spec.task:
            raise ModelLoadError(
                f"model '{spec.name}': the artifact in {artifact} was built for '{m.model}' ({m.task})"
            )
        self.tokenizer.enable_truncation(m.max_length)
        self.tokenizer.enable_padding(pad_id=m.pad_id, pad_token=m.pad_token)
        self.inputs = [node.name for node in self.session.get_inputs()]
        self.info = ModelInfo(
            name=spec.name,
            revision=m.revision,
            device="cpu",
            dtype="int8",
            task=spec.task,
            labels=tuple(m.labels) if m.labels else None,
            dimensions=m.dimensions,
            quantization=m.quantization,
            source_revision=m.source_revision,
        )
        self.forward(["warm-up"])

    def forward(self, texts: list[str]) -> Rows:
        encodings = self.tokenizer.encode_batch(texts)
        columns = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (output,) = self.session.run([self.manifest.output], {name: columns[name] for name in self.inputs})
        output = output.astype(np.float32, copy=False)
        if self.manifest.task == "classification":
            shifted = np.exp(output - output.max(axis=-1, keepdims=True))
            rows = shifted / shifted.sum(axis=-1, keepdims=True)
        else:
            if self.manifest.pooling == "cls":
                rows = output[:, 0]
            else:
                mask = columns["attention_mask"][..., None].astype(np.float32)
                rows = (output * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            if self.manifest.normalize:
                rows = rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
        result: Rows = np.ascontiguousarray(rows, dtype=np.float32)
        return result
