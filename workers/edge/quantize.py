"""Build an int8 artifact from a registry model: export the fp32 model to ONNX, quantise it.

    python -m workers.edge.quantize --model all-MiniLM-L6-v2 --out DIR

Why ONNX Runtime and not torch's dynamic quantisation: torch 2.13 deprecates
`torch.ao.quantization.quantize_dynamic` (it warns that it will be removed, in favour of torchao),
and an edge site should not need torch at all: ONNX Runtime, tokenizers and numpy are a ~60 MB
install against torch's ~700 MB, and the serving process's memory is a fraction (BENCHMARKS.md).
Dynamic quantisation needs no calibration data: weights are int8 per output channel (per-tensor
scales lost ~4x more accuracy on MiniLM), activations are quantised per pass.

This module imports torch; the edge worker runs it in a child process, once per weights revision.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from workers.edge.artifact import FORMAT, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, Manifest, spec_from_json
from workers.gpu.model import pooling_of, sha256_of, weights_revision
from workers.gpu.registry import ModelSpec, load_registry

QUANTIZATION = "onnxruntime dynamic int8 (weights per channel, activations per pass)"
_OPSET = 18


@dataclass(frozen=True)
class Exported:
    output: str
    labels: list[str] | None
    dimensions: int
    max_length: int
    pad_token: str
    pad_id: int


def export_fp32(spec: ModelSpec, out: Path) -> Exported:
    """Write the fp32 model as ONNX to `out` and its tokenizer beside it."""
    import torch
    import transformers
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(spec.path, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise SystemExit(f"model '{spec.name}': the edge pool needs a fast tokenizer (tokenizer.json)")
    classification = spec.task == "classification"
    loader = AutoModelForSequenceClassification if classification else AutoModel
    model = loader.from_pretrained(spec.path, local_files_only=True, dtype=torch.float32).eval()
    sample = tokenizer(["an example sentence", "a second, somewhat longer example sentence"], padding=True,
                       return_tensors="pt")  # fmt: skip
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    output = "logits" if classification else "last_hidden_state"

    class Wrapped(torch.nn.Module):
        # keyword inputs by name: exporting positionally sends token_type_ids where BERT takes another argument
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            result = self.model(**dict(zip(names, tensors, strict=True)))
            return result.logits if classification else result.last_hidden_state

    dynamic = torch.export.Dim.DYNAMIC
    shapes = ({0: dynamic, 1: dynamic} for _ in names)  # any batch size, any length
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapped(), tuple(sample[name] for name in names), str(out), input_names=names, output_names=[output],
            dynamic_shapes=(tuple(shapes),), opset_version=_OPSET, dynamo=True, external_data=False, verbose=False,
        )  # fmt: skip
    config = model.config
    labels = [str(config.id2label[i]) for i in range(int(config.num_labels))] if classification else None
    width = len(labels) if labels else int(config.hidden_size)
    limit = int(getattr(tokenizer, "model_max_length", 512) or 512)
    tokenizer.backend_tokenizer.save(str(out.parent / TOKENIZER_FILE))
    pad = tokenizer.pad_token or "[PAD]"
    pad_id = tokenizer.convert_tokens_to_ids(pad)
    assert isinstance(pad_id, int)
    return Exported(output, labels, width, spec.max_length or min(limit, 512), pad, pad_id)


def quantize_int8(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True)


def build(spec: ModelSpec, directory: Path, *, keep_fp32: bool = False) -> Manifest:
    """Build into a sibling temporary directory and rename it into place: a half-built artifact is
    never seen, and two workers building at once both end with a whole one."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        fp32 = work / "model.fp32.onnx"
        exported = export_fp32(spec, fp32)
        quantize_int8(fp32, work / MODEL_FILE)
        if not keep_fp32:
            fp32.unlink()
        manifest = Manifest(
            model=spec.name,
            task=spec.task,
            source_revision=spec.revision or weights_revision(spec.path),
            revision=sha256_of(work / MODEL_FILE),
            quantization=QUANTIZATION,
            pooling=pooling_of(spec),
            normalize=spec.normalize,
            max_length=exported.max_length,
            dimensions=exported.dimensions,
            labels=exported.labels,
            output=exported.output,
            pad_token=exported.pad_token,
            pad_id=exported.pad_id,
            format=FORMAT,
        )
        (work / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
        work.chmod(0o755)  # mkdtemp made it private
        try:
            work.rename(directory)
        except OSError:  # another build won the race: its artifact is as good
            if not (directory / MANIFEST_FILE).is_file():
                raise
        return Manifest.read(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.edge.quantize", description=__doc__.split("\n")[0])
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--model", help="a registry model's name (the registry AIMATRIX_GPU_MODELS names)")
    given.add_argument("--spec", help=argparse.SUPPRESS)  # the worker passes the spec it resolved
    parser.add_argument("--out", type=Path, required=True, help="the artifact directory to create")
    parser.add_argument("--keep-fp32", action="store_true", help="also keep model.fp32.onnx (benchmarks)")
    args = parser.parse_args(argv)
    spec = spec_from_json(args.spec) if args.spec else load_registry().get(args.model)
    manifest = build(spec, args.out, keep_fp32=args.keep_fp32)
    source = manifest.source_revision[:19]
    print(f"{manifest.model}: {args.out / MODEL_FILE} ({manifest.revision[:19]}…) from {source}…")


if __name__ == "__main__":
    main()
