"""Item-title embeddings from the exported encoder, run in process, cached on disk.

The cache file is named by the model's sha256, so a re-exported model never serves stale
vectors, and holds text -> vector, so a new dataset only encodes the titles it adds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ranker.encoder_identity import encoder_fingerprint
from ranker.tokenizer import TextTokenizer

MODEL_NAME = "bert_encoder"
MAX_TOKENS = 128  # the ranker's default (ranker/settings.py)
BATCH = 64


def latest_version(repository: Path, model_name: str = MODEL_NAME) -> Path:
    versions = [p for p in (repository / model_name).iterdir() if p.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no exported version of {model_name} in {repository}")
    return max(versions, key=lambda p: int(p.name))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode(version_dir: Path, texts: list[str]) -> np.ndarray:
    """Unit vectors, one row per text, batches padded to their own longest text."""
    tokenizer = TextTokenizer(version_dir / "tokenizer" / "tokenizer.json", MAX_TOKENS)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        str(version_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    # Sorting by length keeps each batch's padding short.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks = []
    for start in range(0, len(order), BATCH):
        ids, mask = tokenizer.encode([texts[i] for i in order[start : start + BATCH]])
        chunks.append(session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0])
    vectors = np.empty((len(texts), chunks[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(chunks)
    return vectors


def cached_embeddings(
    repository: Path, cache_dir: Path, texts: list[str]
) -> tuple[np.ndarray, str]:
    """Embeddings of `texts`, encoding only those the cache for this model lacks, and the
    fingerprint of the encoder that made them (ranker/encoder_identity.py)."""
    version_dir = latest_version(repository)
    cache_file = cache_dir / f"{file_sha256(version_dir / 'model.onnx')}.npz"
    known: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file) as stored:
            known = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    missing = sorted(set(texts) - known.keys())
    if missing:
        known.update(zip(missing, encode(version_dir, missing), strict=True))
        cache_dir.mkdir(parents=True, exist_ok=True)
        all_texts = list(known)
        np.savez(cache_file, texts=np.array(all_texts), vectors=np.stack(list(known.values())))
    vectors = np.stack([known[t] for t in texts]).astype(np.float32)
    return vectors, encoder_fingerprint(version_dir)
