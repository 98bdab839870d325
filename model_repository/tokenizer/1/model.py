"""Triton Python-backend model: product text to the token ids that `bert_encoder` takes.

It loads the tokenizer.json that `python -m export` published beside the newest bert_encoder
version, the one Triton serves, so the ids always match the weights; the file carries no padding
and the export's truncation length, which the `max_tokens` parameter replaces (the ranker's, so
that both embed a long text alike). Depends on numpy and tokenizers only.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

ENCODER_MODEL = "bert_encoder"
INPUT_NAME = "TEXT"
OUTPUT_NAMES = ("input_ids", "attention_mask")


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        configured = parameters.get("tokenizer_path", {}).get("string_value", "")
        repository = os.path.dirname(os.path.normpath(args["model_repository"]))
        path = os.path.join(repository, configured) if configured else served_tokenizer(repository)
        self.tokenizer = Tokenizer.from_file(path)
        max_tokens = parameters.get("max_tokens", {}).get("string_value", "")
        if max_tokens:
            self.tokenizer.enable_truncation(max_length=int(max_tokens))

    def execute(self, requests: list) -> list:
        """One encode_batch over every text in the dynamic batch, then each request's share,
        padded only to its own longest text."""
        responses = [None] * len(requests)
        texts = {}
        for index, request in enumerate(requests):
            try:
                texts[index] = read_texts(request)
            except ValueError as exc:
                responses[index] = error_response(str(exc))
        encodings = self.tokenizer.encode_batch(
            [text for batch in texts.values() for text in batch]
        )
        start = 0
        for index, batch in texts.items():
            arrays = pad(encodings[start : start + len(batch)])
            start += len(batch)
            tensors = [
                pb_utils.Tensor(name, a) for name, a in zip(OUTPUT_NAMES, arrays, strict=True)
            ]
            responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses


def served_tokenizer(repository: str) -> str:
    """The newest version is the one bert_encoder's `latest: 1` version policy serves."""
    model_dir = os.path.join(repository, ENCODER_MODEL)
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no version of {model_dir}; run `python -m export` first")
    return os.path.join(model_dir, str(max(versions)), "tokenizer", "tokenizer.json")


def read_texts(request) -> list[str]:
    values = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
    try:
        return [value.decode("utf-8") for value in values.reshape(-1)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{INPUT_NAME} must be UTF-8 text: {exc}") from exc


def pad(encodings: list) -> tuple[np.ndarray, np.ndarray]:
    """Pads with 0, as bert_encoder pads the requests it merges; even "" has [CLS] [SEP]."""
    longest = max(len(encoding.ids) for encoding in encodings)
    input_ids = np.zeros((len(encodings), longest), dtype=np.int64)
    attention_mask = np.zeros_like(input_ids)
    for row, encoding in enumerate(encodings):
        input_ids[row, : len(encoding.ids)] = encoding.ids
        attention_mask[row, : len(encoding.ids)] = encoding.attention_mask
    return input_ids, attention_mask


def error_response(message: str) -> "pb_utils.InferenceResponse":
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
