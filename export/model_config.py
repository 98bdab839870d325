"""The served model's interface and its config.pbtxt; the target supplies backend lines."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from export.targets import Target

# The ONNX graph, every target's served model and the ranker all use these names.
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "embedding"
CONFIG_NAME = "config.pbtxt"
# (input_ids, attention_mask) -> embeddings: a local runtime or a Triton server.
Embedder = Callable[[np.ndarray, np.ndarray], np.ndarray]
# Product titles run 9-24 tokens; warmup at a typical one, clamped to the served maximum.
TYPICAL_TITLE_TOKENS = 16


@dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    instances: int = 1
    threads: int = 0  # 0 lets the runtime pick
    keep_versions: int = 1  # a rollout needs 2: the new version loads while the old one serves


def render_config(
    model_name: str,
    target: "Target",
    hidden_size: int,
    max_seq_len: int,
    options: ServingOptions,
) -> str:
    """Ragged inputs (python-ort only) let Triton's batcher merge requests of different sequence
    lengths, which the model pads to the batch's longest; backends that run the graph directly
    (onnxruntime, tensorrt) need one shape per batch, so they batch equal lengths only."""
    ragged = "    allow_ragged_batch: true\n" if target.ragged_inputs else ""
    inputs = ",\n".join(_tensor(name, "TYPE_INT64", -1, ragged) for name in INPUT_NAMES)
    parameters = "".join(
        f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'
        for key, value in target.parameters(options).items()
    )
    backend = "".join(f"{line}\n" for line in target.backend_lines)
    return (
        f'name: "{model_name}"\n'
        f"{backend}"
        f"max_batch_size: {options.max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{_tensor(OUTPUT_NAME, 'TYPE_FP32', hidden_size)}\n]\n"
        "dynamic_batching {\n"
        f"  max_queue_delay_microseconds: {options.max_queue_delay_us}\n"
        "}\n"
        "instance_group [\n"
        f"  {{\n    kind: {target.instance_kind}\n    count: {options.instances}\n  }}\n"
        "]\n"
        f"version_policy: {{ latest: {{ num_versions: {options.keep_versions} }} }}\n"
        f"{_warmup(min(TYPICAL_TITLE_TOKENS, max_seq_len), options.max_batch_size)}"
        f"{parameters}"
    )


def _tensor(name: str, data_type: str, dim: int, extra: str = "") -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: [ {dim} ]\n{extra}  }}'


def _warmup(tokens: int, max_batch_size: int) -> str:
    """Runs before the model reports ready, so the first real batch does not pay for memory
    arenas, kernel selection or (TensorRT) context setup. Zero data is [PAD] tokens, which every
    vocabulary has; random INT64 ids could fall outside it and fail the load."""
    samples = []
    for batch_size in sorted({1, max_batch_size}):
        inputs = "".join(
            f'    inputs {{\n      key: "{name}"\n      value: {{\n'
            f"        data_type: TYPE_INT64\n        dims: [ {tokens} ]\n"
            "        zero_data: true\n      }\n    }\n"
            for name in INPUT_NAMES
        )
        samples.append(
            f'  {{\n    name: "batch {batch_size}, {tokens} tokens"\n'
            f"    batch_size: {batch_size}\n{inputs}  }}"
        )
    return "model_warmup [\n" + ",\n".join(samples) + "\n]\n"
