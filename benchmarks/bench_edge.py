"""The edge pool's int8 model against the fp32 model it was made from: speed, memory, accuracy.

Three ways to run all-MiniLM-L6-v2 on this CPU, side by side in one run:
- fp32 in torch (the gpu pool's `Encoder`, as the gpu pool runs it on a machine without a GPU);
- fp32 in ONNX Runtime (the exported graph before quantisation: separates the runtime's gain from
  the quantisation's);
- int8 in ONNX Runtime (what the edge pool serves).

Speed: texts per second over the labelled set (tests/data/labelled_texts.json), in passes of one
text (the edge pool's default) and of 16, rounds interleaved across the variants, medians.
Memory: peak RSS of a fresh process that imports what the variant needs, loads the model and
classifies the labelled set (what one worker of that kind holds). Accuracy: zero-shot labels over
the set's five labels against the people's labels, and agreement of int8 with fp32 torch.

Run: `python -m benchmarks.bench_edge` (part of `make bench`); rewrites its block of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import cpu_name, write_block

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "labelled_texts.json"
VARIANTS = ("fp32-torch", "fp32-onnx", "int8-onnx")

Forward = Callable[[list[str]], Any]


def _labelled() -> tuple[dict[str, str], list[str], list[str]]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return data["labels"], [t["text"] for t in data["texts"]], [t["label"] for t in data["texts"]]


def load(variant: str, artifact: Path) -> Forward:
    """The variant's forward pass (rows of normalised embeddings)."""
    from workers.gpu.registry import load_registry

    spec = load_registry().get(None)
    if variant == "fp32-torch":
        from workers.gpu.encoder import Encoder

        return Encoder(spec).forward
    from workers.edge.onnx_model import OnnxModel

    return OnnxModel(spec, _fp32_view(artifact) if variant == "fp32-onnx" else artifact).forward


def _fp32_view(artifact: Path) -> Path:
    """An artifact directory whose model is the graph before quantisation (made by `build_artifact`)."""
    return artifact.parent / (artifact.name + "-fp32")


def classify(forward: Forward, labels: dict[str, str], texts: list[str]) -> tuple[list[str], np.ndarray[Any, Any]]:
    names = list(labels)
    # one text per pass, labels too, as the edge pool serves them (an int8 row depends on its pass's company)
    label_rows = np.concatenate([np.asarray(forward([text]), dtype=np.float64) for text in labels.values()])
    rows = np.concatenate([np.asarray(forward([text]), dtype=np.float64) for text in texts])
    return [names[int(i)] for i in np.argmax(rows @ label_rows.T, axis=1)], rows


def speed(forwards: dict[str, Forward], texts: list[str], rounds: int) -> dict[tuple[str, int], float]:
    """Texts per second for passes of 1 and of 16 texts, rounds interleaved across variants."""
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for batch in (1, 16):
            for name, forward in forwards.items():
                started = time.perf_counter()
                for i in range(0, len(texts), batch):
                    forward(texts[i : i + batch])
                samples.setdefault((name, batch), []).append(len(texts) / (time.perf_counter() - started))
    return {key: statistics.median(values) for key, values in samples.items()}


def peak_rss_mb(variant: str, artifact: Path) -> float:
    """Peak RSS of a fresh process serving the variant (imports, model, the labelled set classified)."""
    code = (
        "import json\n"
        "from benchmarks.bench_edge import _labelled, classify, load\n"
        "from pathlib import Path\n"
        f"forward = load({variant!r}, Path({str(artifact)!r}))\n"
        "labels, texts, _ = _labelled()\n"
        "classify(forward, labels, texts)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would report its parent's
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(json.dumps(int(hwm.split()[1]) / 1024))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def build_artifact(directory: Path) -> Path:
    from workers.edge.quantize import build
    from workers.gpu.registry import load_registry

    artifact = directory / "minilm-int8"
    build(load_registry().get(None), artifact, keep_fp32=True)
    fp32 = _fp32_view(artifact)
    fp32.mkdir()
    for name in ("manifest.json", "tokenizer.json"):
        (fp32 / name).write_bytes((artifact / name).read_bytes())
    (fp32 / "model.int8.onnx").symlink_to(artifact / "model.fp32.onnx")
    return artifact


def render(command: str, info: dict[str, str], results: dict[str, Any]) -> str:
    speeds, rss, acc = results["speed"], results["rss"], results["accuracy"]
    base1, base16 = speeds[("fp32-torch", 1)], speeds[("fp32-torch", 16)]
    rows = [
        f"| {v} | {speeds[(v, 1)]:.0f} | **{speeds[(v, 1)] / base1:.2f}x** | {speeds[(v, 16)]:.0f} | "
        f"**{speeds[(v, 16)] / base16:.2f}x** | {rss[v]:.0f} | **{rss[v] / rss['fp32-torch']:.2f}x** | "
        f"{acc[v]:.0%} | {results['agreement'][v]:.0%} |"
        for v in VARIANTS
    ]
    return "\n".join(
        [
            "## Edge pool: int8 (ONNX Runtime) against fp32",
            "",
            f"`{command}` runs all-MiniLM-L6-v2 three ways on this CPU: fp32 in torch (the gpu pool's encoder), "
            "fp32 in ONNX Runtime (the exported graph before quantisation) and int8 in ONNX Runtime (what the edge "
            "pool serves: dynamic quantisation, weights per channel). Speed over the 60 texts of "
            "`tests/data/labelled_texts.json`, "
            f"rounds interleaved, medians of {results['rounds']}; peak RSS of a fresh process that imports what the "
            "variant needs, loads it and classifies the set; accuracy of zero-shot labels (5 labels, chance 20%) "
            "against the people's labels (one text per pass, as the pool serves them), and agreement with fp32 torch.",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; whole run {results['total_s']:.0f} s",
            f"- Machine: {info['nproc']} CPUs ({info['cpu']}); shared with other jobs, so compare the ratios",
            f"- Python {info['python']}, torch {info['torch']}, onnxruntime {info['onnxruntime']}",
            f"- Artifact: model.int8.onnx {results['int8_mb']:.0f} MB from model.safetensors "
            f"{results['fp32_mb']:.0f} MB "
            f"(built in {results['build_s']:.0f} s); embeddings of the set: int8 vs fp32 cosine min "
            f"{results['cos_min']:.3f}, mean {results['cos_mean']:.4f}",
            "",
            "| variant | texts/s, 1 per pass | vs fp32 torch | texts/s, 16 per pass | vs fp32 torch | peak RSS (MB) "
            "| vs fp32 torch | accuracy | agrees with fp32 torch |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"int8 serves one text per pass (the edge pool's default: its rows do not depend on other requests) "
            f"**{speeds[('int8-onnx', 1)] / base1:.2f}x** as fast as fp32 torch, in "
            f"**{rss['int8-onnx'] / rss['fp32-torch']:.2f}x** the memory, agreeing on "
            f"{results['agreement']['int8-onnx']:.0%} of the labels.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_edge", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="file to write ('-': none)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.bench_edge" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    labels, texts, gold = _labelled()
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        t = time.perf_counter()
        artifact = build_artifact(Path(tmp))
        build_s = time.perf_counter() - t
        rss = {v: peak_rss_mb(v, artifact) for v in VARIANTS}
        print("peak RSS (MB):", {v: round(m) for v, m in rss.items()})
        forwards = {v: load(v, artifact) for v in VARIANTS}
        predicted = {v: classify(forwards[v], labels, texts) for v in VARIANTS}
        reference_labels, reference_rows = predicted["fp32-torch"]
        cosines = (predicted["int8-onnx"][1] * reference_rows).sum(axis=1)
        speeds = speed(forwards, texts, args.rounds)
        for (variant, batch), value in sorted(speeds.items()):
            print(f"{variant:11} {batch:2} per pass: {value:7.0f} texts/s")
        import onnxruntime
        import torch

        from workers.gpu.registry import load_registry

        spec = load_registry().get(None)
        results = {
            "rounds": args.rounds,
            "speed": speeds,
            "rss": rss,
            "accuracy": {
                v: float(np.mean([a == g for a, g in zip(predicted[v][0], gold, strict=True)])) for v in VARIANTS
            },
            "agreement": {
                v: float(np.mean([a == b for a, b in zip(predicted[v][0], reference_labels, strict=True)]))
                for v in VARIANTS
            },
            "cos_min": float(cosines.min()),
            "cos_mean": float(cosines.mean()),
            "int8_mb": (artifact / "model.int8.onnx").stat().st_size / 2**20,
            "fp32_mb": (spec.path / "model.safetensors").stat().st_size / 2**20,
            "build_s": build_s,
            "total_s": time.perf_counter() - started,
        }
        info = {
            "nproc": str(os.cpu_count()),
            "cpu": cpu_name(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__ or metadata.version("onnxruntime"),
        }
    body = render(command, info, results)
    print()
    print(body)
    if str(args.output) != "-":
        write_block(args.output, "bench_edge", body, script="benchmarks.bench_edge")
        print(f"\nwritten to {args.output}")
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
