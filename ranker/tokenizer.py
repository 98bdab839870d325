"""The encoder's own fast tokenizer, as the export wrote it beside the model version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class TextTokenizer:
    def __init__(self, tokenizer_json: Path, max_tokens: int) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        # Padded positions are masked out of the pooling, so the pad id itself does not matter.
        self._tokenizer.enable_padding(pad_id=0)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded to the longest text of this batch only."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask
