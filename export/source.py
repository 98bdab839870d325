"""The source checkpoint: validated and fingerprinted without importing torch or transformers,
so bad input and an up-to-date --skip-if-current answer in well under a second."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportInputError

# Encoders whose AutoModel returns last_hidden_state from (input_ids, attention_mask).
ENCODER_MODEL_TYPES = frozenset(
    {"albert", "bert", "camembert", "distilbert", "electra", "mpnet", "roberta", "xlm-roberta"}
)
WEIGHT_FILE_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


@dataclass(frozen=True)
class SourceModel:
    path: Path
    model_type: str
    weights_sha256: dict[str, str]


def inspect_source(model_dir: Path) -> SourceModel:
    if not model_dir.is_dir():
        raise ExportInputError(f"model dir {model_dir} does not exist or is not a directory")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ExportInputError(f"{model_dir} has no config.json, so it is not a model dir")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportInputError(f"cannot read {config_path}: {exc}") from exc
    if model_type not in ENCODER_MODEL_TYPES:
        raise ExportInputError(
            f"{model_dir} holds a {model_type!r} model, not a BERT-like encoder "
            f"(supported: {', '.join(sorted(ENCODER_MODEL_TYPES))})"
        )
    weights = sorted({path for pattern in WEIGHT_FILE_PATTERNS for path in model_dir.glob(pattern)})
    if not weights:
        raise ExportInputError(f"{model_dir} has no weights (*.safetensors or pytorch_model*.bin)")
    return SourceModel(
        path=model_dir.resolve(),
        model_type=model_type,
        weights_sha256={path.name: _sha256(path) for path in weights},
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
