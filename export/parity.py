"""Parity gate: what a target will serve must embed like PyTorch fp32 before it is published.

Every probe text is embedded alone (batch 1) and inside full batches of the served maximum size
(probes repeated to fill them), because padding and batch-dependent kernels are where served
numbers drift.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from export.errors import ExportFailure
from export.model_config import Embedder
from export.onnx_graph import EmbeddingGraph
from export.progress import progress_bar
from export.serving_tokenizer import encode_padded

# The lowest acceptable cosine to PyTorch fp32, by served precision.
MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}
_SHORTEN_TO = 80

# Short catalogue titles, text long enough to hit truncation, unicode, and near-empty strings.
PROBE_TEXTS = (
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "REGENCY CAKESTAND 3 TIER",
    "JUMBO BAG RED RETROSPOT",
    "PACK OF 72 RETROSPOT CAKE CASES",
    "ASSORTED COLOUR BIRD ORNAMENT",
    "Wireless noise-cancelling headphones, 30h battery, USB-C",
    "organic cotton t-shirt (men's, size L) - navy blue",
    "Crème brûlée torch, café edition: naïve façade, Ærø, Øresund",
    "Geschenkkorb für Weihnachten mit Süßigkeiten",
    "日本茶 抹茶 ギフトセット",
    "Кружка керамическая 350 мл",
    "party pack 🎉🎈 balloons + confetti 🥳",
    "x",
    "?",
    " ",
    "",
    "vintage " * 3 + "lamp",
    " ".join(
        "A long product description that keeps going about materials, sizes, care "
        "instructions and shipping details, well past the encoder's maximum length."
        for _ in range(40)
    ),
)


class ParityError(ExportFailure):
    """What would be served disagrees with PyTorch; the CLI exits 1 and nothing is published."""


@dataclass(frozen=True)
class ParityReport:
    threshold: float
    max_batch_size: int
    single: dict[str, float]  # per probe text, cosine at batch 1
    batched: dict[str, float]  # per probe text, the worst of its rows in full max-size batches

    @property
    def cosines(self) -> dict[str, float]:
        return {text: min(self.single[text], self.batched[text]) for text in self.single}

    @property
    def worst_text(self) -> str:
        cosines = self.cosines
        return min(cosines, key=cosines.__getitem__)

    @property
    def worst_cosine(self) -> float:
        return self.cosines[self.worst_text]

    @property
    def failures(self) -> dict[str, float]:
        return {text: cos for text, cos in self.cosines.items() if cos < self.threshold}

    def describe_worst(self) -> str:
        return (
            f"worst cosine {self.worst_cosine:.8f} for {shorten(self.worst_text)!r} "
            f"(batch 1: {min(self.single.values()):.8f}, "
            f"batch {self.max_batch_size}: {min(self.batched.values()):.8f})"
        )

    def summary(self) -> dict[str, float | int | str]:
        return {
            "min_cosine": self.threshold,
            "worst_cosine": self.worst_cosine,
            "worst_cosine_batch_1": min(self.single.values()),
            "worst_cosine_max_batch": min(self.batched.values()),
            "max_batch_size": self.max_batch_size,
            "worst_text": shorten(self.worst_text),
            "texts": len(self.single),
        }


def reference_embeddings(graph: EmbeddingGraph, tokenizer: Tokenizer) -> np.ndarray:
    """PyTorch fp32, one text at a time: the reference needs no padding at all."""
    rows = []
    with torch.no_grad():
        for text in progress_bar(PROBE_TEXTS, "torch fp32 reference"):
            input_ids, attention_mask = encode_padded(tokenizer, [text])
            rows.append(graph(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)))
    return torch.cat(rows).numpy()


def check_parity(
    reference: np.ndarray,
    tokenizer: Tokenizer,
    embed: Embedder,
    *,
    threshold: float,
    max_batch_size: int,
) -> ParityReport:
    single = np.concatenate(
        [
            embed(*encode_padded(tokenizer, [text]))
            for text in progress_bar(PROBE_TEXTS, "parity at batch 1")
        ]
    )
    batched = _embed_full_batches(tokenizer, embed, max_batch_size)
    count = len(PROBE_TEXTS)
    # NaN, from a broken graph, must fail the gate; compared as is, it would pass it.
    single_cos = np.nan_to_num(_cosine(reference, single), nan=-1.0)
    row_cos = np.nan_to_num(_cosine(reference[np.arange(len(batched)) % count], batched), nan=-1.0)
    batched_cos = np.full(count, np.inf)
    np.minimum.at(batched_cos, np.arange(len(batched)) % count, row_cos)
    return ParityReport(
        threshold=threshold,
        max_batch_size=max_batch_size,
        single=dict(zip(PROBE_TEXTS, map(float, single_cos), strict=True)),
        batched=dict(zip(PROBE_TEXTS, map(float, batched_cos), strict=True)),
    )


def run_gate(
    reference: np.ndarray,
    tokenizer: Tokenizer,
    embedders: dict[str, Embedder],
    *,
    threshold: float,
    max_batch_size: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Checks every file (or server) that may serve and logs each one's worst case and failing
    probes; raises ParityError if any fails, else returns the parity record for the manifest
    (the worst one's figures, then each one's)."""
    reports = {
        label: check_parity(
            reference, tokenizer, embed, threshold=threshold, max_batch_size=max_batch_size
        )
        for label, embed in embedders.items()
    }
    for label, report in reports.items():
        for text, cosine in report.failures.items():
            log(f"  {label}: cosine {cosine:.6f} < {report.threshold} for {shorten(text)!r}")
        log(f"{label}: {report.describe_worst()}")
    worst_label = min(reports, key=lambda label: reports[label].worst_cosine)
    worst = reports[worst_label]
    if worst.failures:
        raise ParityError(
            f"parity failed for {len(worst.failures)} of {len(worst.single)} texts in "
            f"{worst_label}: {worst.describe_worst()}, below {worst.threshold}"
        )
    return {
        **worst.summary(),
        "files": {label: report.summary() for label, report in reports.items()},
    }


def _embed_full_batches(tokenizer: Tokenizer, embed: Embedder, max_batch_size: int) -> np.ndarray:
    """Row i holds PROBE_TEXTS[i % len(PROBE_TEXTS)]: the probes cycled into as many batches of
    exactly max_batch_size rows as it takes for every probe to appear."""
    count = len(PROBE_TEXTS)
    rows = -(-count // max_batch_size) * max_batch_size
    texts = [PROBE_TEXTS[row % count] for row in range(rows)]
    starts = range(0, rows, max_batch_size)
    return np.concatenate(
        [
            embed(*encode_padded(tokenizer, texts[start : start + max_batch_size]))
            for start in progress_bar(starts, f"parity at batch {max_batch_size}")
        ]
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(axis=-1) / np.maximum(norms, 1e-12)


def shorten(text: str) -> str:
    """Probe texts run to thousands of characters; logs and the manifest need a readable handle."""
    return text if len(text) <= _SHORTEN_TO else text[: _SHORTEN_TO - 3] + "..."
