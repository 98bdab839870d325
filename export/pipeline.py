"""The slow part of an export: load, trace to ONNX, build the target, parity gate, publish.

Nothing touches the repository until the parity gate has passed on the files the target will
serve; the one exception is TensorRT's timing cache, which only speeds up later builds.
"""

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime
import torch
import transformers

from export.encoder import load_encoder
from export.manifest import build_manifest, write_manifest
from export.model_config import CONFIG_NAME, Embedder, ServingOptions, render_config
from export.onnx_graph import EmbeddingGraph, export_onnx
from export.parity import (
    MIN_COSINE,
    PROBE_TEXTS,
    ParityError,
    check_parity,
    reference_embeddings,
    run_gate,
)
from export.progress import progress_step
from export.repository import publish_version, write_atomically
from export.serving_tokenizer import save_tokenizer, serving_tokenizer
from export.source import SourceModel
from export.targets import BuildContext, Target


def export_version(
    *,
    source: SourceModel,
    target: Target,
    model_dir: Path,
    opset: int,
    options: ServingOptions,
    log: Callable[[str], None],
    min_cosine: float | None = None,
) -> tuple[int, Path]:
    """Returns the published version number and its directory. `min_cosine` replaces the
    precision's parity threshold (an operator's explicit choice, kept in the manifest)."""
    threshold = MIN_COSINE[target.precision] if min_cosine is None else min_cosine
    if threshold < MIN_COSINE[target.precision]:
        log(
            f"warning: --min-cosine {threshold} lowers the {target.precision} parity gate from "
            f"{MIN_COSINE[target.precision]}; the manifest records it"
        )
    log(f"loading model from {source.path}...")
    loaded = load_encoder(source)
    full_length = serving_tokenizer(loaded.tokenizer, loaded.max_seq_len)
    max_seq_len = target.fit_sequence_length(
        loaded.max_seq_len, shortest=len(full_length.encode("").ids)
    )
    tokenizer = serving_tokenizer(loaded.tokenizer, max_seq_len)
    graph = EmbeddingGraph(loaded.encoder)
    with tempfile.TemporaryDirectory(prefix="ranker-export-") as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        log(f"exporting ONNX (opset {opset})...")
        with progress_step("ONNX export"):
            export_onnx(graph, onnx_path, opset)
        served_dir = Path(scratch) / "version"
        served_dir.mkdir()
        reference = reference_embeddings(graph, tokenizer)

        def worst_cosine(embed: Embedder) -> float:
            return check_parity(
                reference,
                tokenizer,
                embed,
                threshold=threshold,
                max_batch_size=options.max_batch_size,
            ).worst_cosine

        context = BuildContext(
            max_batch_size=options.max_batch_size,
            max_seq_len=max_seq_len,
            repository=model_dir.parent,
            log=log,
            num_heads=loaded.encoder.config.num_attention_heads,
            hidden_size=loaded.hidden_size,
            min_cosine=threshold,
            worst_cosine=worst_cosine,
        )
        target_details = target.build(onnx_path, served_dir, context)
        log(f"checking parity ({len(PROBE_TEXTS)} texts, batch 1 and {options.max_batch_size})...")
        try:
            parity = run_gate(
                reference,
                tokenizer,
                target.embedders(served_dir),
                threshold=threshold,
                max_batch_size=options.max_batch_size,
                log=log,
            )
        except ParityError as exc:
            raise ParityError(f"{exc}; nothing published") from None
        manifest = build_manifest(
            source=source,
            target=target,
            hidden_size=loaded.hidden_size,
            max_seq_len=max_seq_len,
            opset=opset,
            tools={
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            parity=parity,
            target_details=target_details,
        )

        def write_version(version_dir: Path) -> None:
            shutil.copytree(served_dir, version_dir, dirs_exist_ok=True)
            save_tokenizer(loaded.tokenizer, tokenizer, max_seq_len, version_dir)
            write_manifest(version_dir, manifest)

        published = publish_version(model_dir, write_version)
    config = render_config(model_dir.name, target, loaded.hidden_size, max_seq_len, options)
    write_atomically(model_dir / CONFIG_NAME, config)
    return published
