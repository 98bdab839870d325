"""Encoder throughput at batch 32 on real product titles, four ways, in one run.

(a) in-process ONNX Runtime on the graph the served model loads, (b) the same model through
Triton from a gRPC client, (c) PyTorch eager on the source checkpoint, (d) sentence-transformers'
`encode` on the same titles (tokenizing included, as its users run it), with ratios to (a), (d).
Each batch is padded to its own longest title, as the ranker sends them. Needs an exported
model: `python -m export` (or `make demo`) first.

    python bench/encoder.py [--repository model_repository] [--seconds 10] [--paths ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import tritonclient.grpc as triton_grpc

from export.encoder import load_encoder
from export.onnx_graph import EmbeddingGraph
from export.source import inspect_source
from export.targets.ort_graph import ort_embedder
from launcher.triton import TritonServer
from ranker.settings import Settings
from ranker.tokenizer import TextTokenizer
from ranker.triton import encoder_inputs

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32
PATHS = ("onnxruntime", "triton_grpc", "torch_eager", "sentence_transformers")
# The targets for the CPU default: Triton against (a) and against (d), the references.
TARGETS = {"onnxruntime": 0.9, "sentence_transformers": 1.7}


@dataclass(frozen=True)
class TitleBatch:
    texts: list[str]
    input_ids: np.ndarray
    attention_mask: np.ndarray


def load_titles(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def batches(tokenizer_json: Path, titles: list[str], size: int) -> list[TitleBatch]:
    tokenizer = TextTokenizer(tokenizer_json, Settings().max_tokens)
    out = []
    for start in range(0, len(titles) - size + 1, size):
        texts = titles[start : start + size]
        out.append(TitleBatch(texts, *tokenizer.encode(texts)))
    return out


def measure(run: Callable[[TitleBatch], object], data: list[TitleBatch], seconds: float) -> dict:
    for batch in data[:3]:
        run(batch)
    latencies = []
    embeddings = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in data:
            t0 = time.perf_counter()
            run(batch)
            latencies.append(time.perf_counter() - t0)
            embeddings += len(batch.texts)
    elapsed = time.perf_counter() - start
    return {
        "embeddings_per_s": embeddings / elapsed,
        "batch_ms_p50": 1000 * float(np.percentile(latencies, 50)),
        "batches": len(latencies),
    }


def onnxruntime_run(version_dir: Path, manifest: dict) -> Callable[[TitleBatch], object]:
    """The graph the served model loads: the one the export optimised offline when this ONNX
    Runtime wrote it, else model.onnx optimised at load, as python-ort's model.py chooses."""
    optimized = manifest.get("ort_optimized") or {}
    if optimized.get("onnxruntime") == ort.__version__:
        embed = ort_embedder(version_dir / optimized["file"], optimized_offline=True)
    else:
        embed = ort_embedder(version_dir / "model.onnx")
    return lambda b: embed(b.input_ids, b.attention_mask)


def triton_run(
    client: triton_grpc.InferenceServerClient, model_name: str
) -> Callable[[TitleBatch], object]:
    def run(batch: TitleBatch) -> np.ndarray:
        inputs = encoder_inputs(batch.input_ids, batch.attention_mask)
        return client.infer(model_name, inputs).as_numpy("embedding")

    return run


def torch_run(model_dir: Path) -> Callable[[TitleBatch], object]:
    graph = EmbeddingGraph(load_encoder(inspect_source(model_dir)).encoder).eval()

    def run(batch: TitleBatch) -> np.ndarray:
        with torch.inference_mode():
            ids, mask = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
            return graph(ids, mask).numpy()

    return run


def sentence_transformers_run(model_dir: Path) -> Callable[[TitleBatch], object]:
    """The checkpoint the export started from, loaded offline from its package directory."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    return lambda b: model.encode(b.texts, batch_size=len(b.texts), normalize_embeddings=True)


def add_ratios(results: dict) -> None:
    """Each path's throughput over each reference path's, where this run measured it."""
    for row in results.values():
        for reference in TARGETS:
            if reference in results:
                reference_rate = results[reference]["embeddings_per_s"]
                row[f"ratio_to_{reference}"] = row["embeddings_per_s"] / reference_rate


def report_targets(results: dict) -> list[str]:
    """One line per target that this run measured both sides of."""
    lines = []
    for reference, minimum in TARGETS.items():
        ratio = results.get("triton_grpc", {}).get(f"ratio_to_{reference}")
        if ratio is not None:
            verdict = "met" if ratio >= minimum else "MISSED"
            lines.append(f"target triton_grpc >= {minimum}x {reference}: {ratio:.2f}x, {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--model-name", default="bert_encoder")
    parser.add_argument("--titles", type=Path, default=ROOT / "demo" / "data" / "items.csv")
    parser.add_argument("--batch", type=int, default=BATCH, help="titles per call")
    parser.add_argument("--seconds", type=float, default=10.0, help="per path")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encoder.json")
    args = parser.parse_args(argv)

    model_dir = args.repository / args.model_name
    versions = sorted((int(p.name) for p in model_dir.glob("[0-9]*")), reverse=True)
    if not versions:
        print(f"error: no version of {model_dir}; run `python -m export` first", file=sys.stderr)
        return 2
    version_dir = model_dir / str(versions[0])
    manifest = json.loads((version_dir / "manifest.json").read_text())
    source_dir = Path(manifest["source"]["model_dir"])
    data = batches(
        version_dir / "tokenizer" / "tokenizer.json", load_titles(args.titles), args.batch
    )

    results = {}
    for path in args.paths:
        print(f"{path}, {args.seconds:g} s ...", file=sys.stderr, flush=True)
        if path == "triton_grpc":
            with TritonServer(args.repository) as server:
                client = triton_grpc.InferenceServerClient(server.grpc_url)
                results[path] = measure(triton_run(client, args.model_name), data, args.seconds)
                client.close()
            continue
        run = {
            "onnxruntime": lambda: onnxruntime_run(version_dir, manifest),
            "torch_eager": lambda: torch_run(source_dir),
            "sentence_transformers": lambda: sentence_transformers_run(source_dir),
        }[path]()
        results[path] = measure(run, data, args.seconds)

    print(
        f"\nencoder {args.model_name}:{versions[0]} ({manifest.get('precision', 'fp32')}), "
        f"batch {args.batch}, padded to the longest title of each batch"
    )
    print(f"{'path':<22} {'emb/s':>9} {'p50 ms/batch':>13} {'vs (a)':>7} {'vs (d)':>7}")
    add_ratios(results)
    for name, row in results.items():
        ratios = [row.get(f"ratio_to_{reference}") for reference in TARGETS]
        cells = "".join(f" {r:>7.2f}" if r is not None else f" {'-':>7}" for r in ratios)
        print(f"{name:<22} {row['embeddings_per_s']:>9.0f} {row['batch_ms_p50']:>13.1f}{cells}")
    for line in report_targets(results):
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "batch": args.batch,
        "padding": "longest in batch",
        "model_version": versions[0],
        "precision": manifest.get("precision", "fp32"),
        **results,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
