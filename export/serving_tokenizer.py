"""The tokenizer the ranker runs: `tokenizer/tokenizer.json`, loaded with the `tokenizers` library.

Checkpoints often ship a tokenizer.json with fixed padding and truncation baked in (MiniLM's pads
and cuts at 128). transformers overrides those per call, the `tokenizers` library applies them as
they are, so the published file is pinned to the exported max_seq_len and no padding, and the
parity gate tokenizes with this exact tokenizer.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

TOKENIZER_DIR = "tokenizer"


def serving_tokenizer(tokenizer: PreTrainedTokenizerBase, max_seq_len: int) -> Tokenizer:
    served = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    served.enable_truncation(max_seq_len)
    served.no_padding()
    return served


def encode_padded(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pads with 0 to the longest text, as the Triton model pads merged requests."""
    encodings = tokenizer.encode_batch(list(texts))
    longest = max(len(encoding.ids) for encoding in encodings)
    input_ids = np.zeros((len(encodings), longest), dtype=np.int64)
    attention_mask = np.zeros_like(input_ids)
    for row, encoding in enumerate(encodings):
        input_ids[row, : len(encoding.ids)] = encoding.ids
        attention_mask[row, : len(encoding.ids)] = encoding.attention_mask
    return input_ids, attention_mask


def save_tokenizer(
    tokenizer: PreTrainedTokenizerBase, served: Tokenizer, max_seq_len: int, version_dir: Path
) -> Path:
    """Keeps transformers' files too, so AutoTokenizer users get the same limits."""
    destination = version_dir / TOKENIZER_DIR
    tokenizer.model_max_length = max_seq_len
    tokenizer.save_pretrained(destination)
    served.save(str(destination / "tokenizer.json"))
    return destination
