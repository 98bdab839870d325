"""Loading the checkpoint into a torch encoder and its tokenizer, offline only."""

import json
from dataclasses import dataclass

import transformers
from transformers import (
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from export.errors import ExportInputError
from export.source import SourceModel


@dataclass(frozen=True)
class LoadedEncoder:
    encoder: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    hidden_size: int
    max_seq_len: int


def load_encoder(source: SourceModel) -> LoadedEncoder:
    # Its own progress bars and warnings would bury the export's log lines.
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        # Eager attention traces to the plain MatMul-softmax pattern that ONNX Runtime fuses
        # into its Attention kernel and TensorRT into its own; SDPA's trace hides it behind
        # NaN guards that neither recognises.
        encoder = AutoModel.from_pretrained(
            source.path, local_files_only=True, attn_implementation="eager"
        )
        tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
    except (OSError, ValueError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportInputError(f"cannot load {source.path}: {first_line}") from exc
    if not tokenizer.is_fast:
        raise ExportInputError(f"{source.path} has no fast tokenizer (tokenizer.json)")
    return LoadedEncoder(
        encoder=encoder.eval(),
        tokenizer=tokenizer,
        hidden_size=encoder.config.hidden_size,
        max_seq_len=_max_seq_len(source, encoder.config.max_position_embeddings, tokenizer),
    )


def _max_seq_len(
    source: SourceModel, max_positions: int, tokenizer: PreTrainedTokenizerBase
) -> int:
    """sentence-transformers checkpoints are trained and evaluated at their own, shorter length;
    tokenizers without a limit report a huge sentinel, hence the cap by position embeddings."""
    limit = int(min(max_positions, tokenizer.model_max_length))
    sentence_config = source.path / "sentence_bert_config.json"
    if sentence_config.is_file():
        wanted = json.loads(sentence_config.read_text()).get("max_seq_length")
        if isinstance(wanted, int) and 0 < wanted < limit:
            return wanted
    return limit
