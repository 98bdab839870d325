"""Encoder throughput at batch 32, sequence length 64, on real product titles, three ways.

(a) in-process ONNX Runtime on the exported model.onnx, (b) the same model through Triton from
a gRPC client, (c) PyTorch eager on the source checkpoint, all in one run, with ratios to (a).
Needs an exported model: `python -m export` (or `make demo`) first.

    python bench/encoder.py [--repository model_repository] [--seconds 10]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import tritonclient.grpc as triton_grpc
from tokenizers import Tokenizer

from export.encoder import load_encoder
from export.onnx_graph import EmbeddingGraph
from export.source import inspect_source
from launcher.triton import TritonServer
from ranker.triton import encoder_inputs

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32
SEQ_LEN = 64


def load_titles(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def batches(tokenizer_json: Path, titles: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.enable_truncation(max_length=SEQ_LEN)
    tokenizer.enable_padding(pad_id=0, length=SEQ_LEN)
    out = []
    for start in range(0, len(titles) - BATCH + 1, BATCH):
        encodings = tokenizer.encode_batch(titles[start : start + BATCH])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        out.append((ids, mask))
    return out


def measure(run: Callable[[np.ndarray, np.ndarray], object], data: list, seconds: float) -> dict:
    for ids, mask in data[:3]:
        run(ids, mask)
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for ids, mask in data:
            t0 = time.perf_counter()
            run(ids, mask)
            latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {
        "embeddings_per_s": len(latencies) * BATCH / elapsed,
        "batch_ms_p50": 1000 * float(np.percentile(latencies, 50)),
        "batches": len(latencies),
    }


def onnxruntime_run(model_onnx: Path) -> Callable:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model_onnx), options, providers=["CPUExecutionProvider"])
    return lambda ids, mask: session.run(None, {"input_ids": ids, "attention_mask": mask})


def triton_run(client: triton_grpc.InferenceServerClient, model_name: str) -> Callable:
    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return client.infer(model_name, encoder_inputs(ids, mask)).as_numpy("embedding")

    return run


def torch_run(model_dir: Path) -> Callable:
    graph = EmbeddingGraph(load_encoder(inspect_source(model_dir)).encoder).eval()

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--model-name", default="bert_encoder")
    parser.add_argument("--titles", type=Path, default=ROOT / "demo" / "data" / "items.csv")
    parser.add_argument("--seconds", type=float, default=10.0, help="per path")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encoder.json")
    args = parser.parse_args()

    model_dir = args.repository / args.model_name
    versions = sorted((int(p.name) for p in model_dir.glob("[0-9]*")), reverse=True)
    if not versions:
        print(f"error: no version of {model_dir}; run `python -m export` first", file=sys.stderr)
        return 2
    version_dir = model_dir / str(versions[0])
    manifest = json.loads((version_dir / "manifest.json").read_text())
    data = batches(version_dir / "tokenizer" / "tokenizer.json", load_titles(args.titles))

    results = {}
    print(f"(a) in-process ONNX Runtime, {args.seconds:.0f} s ...", file=sys.stderr)
    results["onnxruntime"] = measure(
        onnxruntime_run(version_dir / "model.onnx"), data, args.seconds
    )
    print("(b) Triton over gRPC ...", file=sys.stderr)
    with TritonServer(args.repository) as server:
        client = triton_grpc.InferenceServerClient(server.grpc_url)
        results["triton_grpc"] = measure(triton_run(client, args.model_name), data, args.seconds)
        client.close()
    print("(c) PyTorch eager ...", file=sys.stderr)
    results["torch_eager"] = measure(
        torch_run(Path(manifest["source"]["model_dir"])), data, args.seconds
    )

    baseline = results["onnxruntime"]["embeddings_per_s"]
    print(f"\nencoder {args.model_name}:{versions[0]}, batch {BATCH}, seq {SEQ_LEN}")
    print(f"{'path':<14} {'emb/s':>9} {'p50 ms/batch':>13} {'vs (a)':>7}")
    for name, row in results.items():
        row["ratio_to_onnxruntime"] = row["embeddings_per_s"] / baseline
        print(
            f"{name:<14} {row['embeddings_per_s']:>9.0f} {row['batch_ms_p50']:>13.1f} "
            f"{row['ratio_to_onnxruntime']:>7.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"batch": BATCH, "seq_len": SEQ_LEN, "model_version": versions[0], **results}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
