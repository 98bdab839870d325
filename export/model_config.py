"""The served model's interface and its config.pbtxt; the target supplies backend lines."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from export.targets import Target

# The ONNX graph, the Python-backend model and the ranker all use these names.
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "embedding"
CONFIG_NAME = "config.pbtxt"


@dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    instances: int = 1
    threads: int = 0  # 0 lets the runtime pick


def render_config(
    model_name: str, target: "Target", hidden_size: int, options: ServingOptions
) -> str:
    """Inputs allow ragged batches: without that, Triton's batcher only merges requests of equal
    sequence length, and product titles vary; the model pads each merged batch to its longest."""
    inputs = ",\n".join(
        _tensor(name, "TYPE_INT64", -1, "    allow_ragged_batch: true\n") for name in INPUT_NAMES
    )
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
        "version_policy: { latest: { num_versions: 1 } }\n"
        f"{parameters}"
    )


def _tensor(name: str, data_type: str, dim: int, extra: str = "") -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: [ {dim} ]\n{extra}  }}'
