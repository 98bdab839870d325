"""The slow part of an export: load, trace to ONNX, parity gate, publish, config.pbtxt.

Nothing touches the repository until the parity gate has passed.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime
import torch
import transformers

from export.encoder import load_encoder
from export.manifest import build_manifest, write_manifest
from export.model_config import CONFIG_NAME, ServingOptions, render_config
from export.onnx_graph import EmbeddingGraph, export_onnx
from export.parity import PROBE_TEXTS, check_parity, shorten
from export.repository import publish_version, write_atomically
from export.serving_tokenizer import save_tokenizer, serving_tokenizer
from export.source import SourceModel
from export.targets import Target


class ParityError(Exception):
    """The exported graph disagrees with PyTorch; the CLI exits 1 and nothing is published."""


def export_version(
    *,
    source: SourceModel,
    target: Target,
    model_dir: Path,
    opset: int,
    options: ServingOptions,
    log: Callable[[str], None],
) -> tuple[int, Path]:
    """Returns the published version number and its directory."""
    log(f"loading model from {source.path}...")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    loaded = load_encoder(source)
    tokenizer = serving_tokenizer(loaded.tokenizer, loaded.max_seq_len)
    graph = EmbeddingGraph(loaded.encoder)
    with tempfile.TemporaryDirectory(prefix="ranker-export-") as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        log(f"exporting ONNX (opset {opset})...")
        export_onnx(graph, onnx_path, opset)
        log(f"checking parity ({len(PROBE_TEXTS)} texts)...")
        parity = check_parity(graph, tokenizer, onnx_path)
        for text, cosine in parity.failures.items():
            log(f"  cosine {cosine:.8f} < {parity.threshold} for {shorten(text)!r}")
        worst = f"worst cosine {parity.worst_cosine:.8f} for {shorten(parity.worst_text)!r}"
        if parity.failures:
            raise ParityError(
                f"parity failed for {len(parity.failures)} of {len(parity.cosines)} texts "
                f"({worst}); nothing published"
            )
        log(f"parity ok: {worst}")
        manifest = build_manifest(
            source=source,
            target=target,
            hidden_size=loaded.hidden_size,
            max_seq_len=loaded.max_seq_len,
            opset=opset,
            tools={
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            parity=parity.summary(),
        )

        def write_version(version_dir: Path) -> None:
            target.write_version_files(onnx_path, version_dir)
            save_tokenizer(loaded.tokenizer, tokenizer, loaded.max_seq_len, version_dir)
            write_manifest(version_dir, manifest)

        published = publish_version(model_dir, write_version)
    config = render_config(model_dir.name, target, loaded.hidden_size, options)
    write_atomically(model_dir / CONFIG_NAME, config)
    return published
