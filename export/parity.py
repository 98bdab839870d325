"""Parity gate: the ONNX graph must embed like PyTorch fp32 before anything is published."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer

from export.model_config import OUTPUT_NAME
from export.onnx_graph import EmbeddingGraph
from export.serving_tokenizer import encode_padded

MIN_COSINE = 0.9999
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


@dataclass(frozen=True)
class ParityReport:
    threshold: float
    cosines: dict[str, float]  # per probe text, the worse of its batch-1 and padded-batch runs

    @property
    def worst_text(self) -> str:
        return min(self.cosines, key=self.cosines.__getitem__)

    @property
    def worst_cosine(self) -> float:
        return self.cosines[self.worst_text]

    @property
    def failures(self) -> dict[str, float]:
        return {text: cos for text, cos in self.cosines.items() if cos < self.threshold}

    def summary(self) -> dict[str, float | int | str]:
        return {
            "min_cosine": self.threshold,
            "worst_cosine": self.worst_cosine,
            "worst_text": shorten(self.worst_text),
            "texts": len(self.cosines),
        }


def check_parity(graph: EmbeddingGraph, tokenizer: Tokenizer, onnx_path: Path) -> ParityReport:
    """Compares against PyTorch at batch 1, so padding inside the ONNX batch is checked too."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = np.concatenate([_torch_embed(graph, tokenizer, [text]) for text in PROBE_TEXTS])
    single = np.concatenate([_onnx_embed(session, tokenizer, [text]) for text in PROBE_TEXTS])
    batched = _onnx_embed(session, tokenizer, PROBE_TEXTS)
    # NaN, from a broken graph, must fail the gate; compared as is, it would pass it.
    worst = np.nan_to_num(
        np.minimum(_cosine(reference, single), _cosine(reference, batched)), nan=-1.0
    )
    return ParityReport(
        threshold=MIN_COSINE,
        cosines={text: float(cos) for text, cos in zip(PROBE_TEXTS, worst, strict=True)},
    )


def _torch_embed(graph: EmbeddingGraph, tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    input_ids, attention_mask = encode_padded(tokenizer, texts)
    with torch.no_grad():
        return graph(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()


def _onnx_embed(
    session: ort.InferenceSession, tokenizer: Tokenizer, texts: Sequence[str]
) -> np.ndarray:
    input_ids, attention_mask = encode_padded(tokenizer, texts)
    feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
    return session.run([OUTPUT_NAME], feeds)[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def shorten(text: str) -> str:
    """Probe texts run to thousands of characters; logs and the manifest need a readable handle."""
    return text if len(text) <= _SHORTEN_TO else text[: _SHORTEN_TO - 3] + "..."
