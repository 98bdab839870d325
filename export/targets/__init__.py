"""Serving targets: how the exported ONNX graph becomes a Triton version dir.

A target is one module implementing `Target` plus one entry in `TARGET_NAMES` and
`make_target`; the CLI's --target choices, config.pbtxt, the parity gate and the manifest follow.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from export.errors import ExportInputError
from export.model_config import Embedder, ServingOptions
from export.targets.shape_profile import ShapeProfile

DEFAULT_TARGET = "python-ort"
TARGET_NAMES = ("python-ort", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class TargetSettings:
    """What the command line asked of a target; each target refuses what it cannot do."""

    int8: bool = False
    device: str | None = None  # "cpu" or "gpu"; None: the target's default
    batch: ShapeProfile | None = None
    seq: ShapeProfile | None = None


@dataclass(frozen=True)
class BuildContext:
    max_batch_size: int
    max_seq_len: int
    repository: Path  # a target may keep caches beside the versions (TensorRT's timing cache)
    log: Callable[[str], None]
    num_heads: int  # ONNX Runtime's attention fusion needs the head layout
    hidden_size: int
    min_cosine: float  # the parity gate this build must pass
    # The gate's worst cosine for a candidate graph: a target that trades accuracy for speed
    # (int8's choice of layers) measures each choice by the gate that will judge it.
    worst_cosine: Callable[[Embedder], float]


class Target(Protocol):
    name: str
    precision: str  # "fp32", "fp16" or "int8": what the parity gate holds it to
    min_opset: int
    backend_lines: tuple[str, ...]  # config.pbtxt `backend:` or `platform:` lines
    instance_kind: str
    ragged_inputs: bool  # whether the served model pads merged requests of different lengths

    def check_ready(self) -> None:
        """Fails fast, before the slow export, when a tool the target needs is missing."""
        ...

    def fit_sequence_length(self, longest: int, shortest: int) -> int:
        """The served max_seq_len, given the model's and the shortest tokenized text's."""
        ...

    def parameters(self, options: ServingOptions) -> dict[str, str]:
        """config.pbtxt `parameters` entries, read by the served model at load time."""
        ...

    def build(self, onnx_path: Path, out_dir: Path, context: BuildContext) -> dict[str, Any]:
        """Writes everything the backend loads from the version dir into out_dir (tokenizer and
        manifest aside) and returns what the manifest should record about it."""
        ...

    def embedders(self, version_dir: Path) -> dict[str, Embedder]:
        """Runs each file the backend may serve from version_dir, for the parity gate."""
        ...


def make_target(name: str, settings: TargetSettings) -> Target:
    from export.targets.onnxruntime import OnnxRuntimeTarget
    from export.targets.python_ort import PythonOrtTarget
    from export.targets.tensorrt import TensorRTTarget

    if name != "tensorrt" and (settings.batch or settings.seq):
        raise ExportInputError("--batch and --seq are TensorRT profiles: use --target tensorrt")
    if name == "python-ort":
        if settings.device == "gpu":
            raise ExportInputError("--target python-ort runs on the CPU: drop --device gpu")
        return PythonOrtTarget(int8=settings.int8)
    if name == "onnxruntime":
        device = settings.device or ("cpu" if settings.int8 else "gpu")
        if settings.int8 and device == "gpu":
            raise ExportInputError(
                "--int8 dynamic quantisation runs on ONNX Runtime's CPU kernels: use --device cpu"
            )
        return OnnxRuntimeTarget(int8=settings.int8, device=device)
    if name == "tensorrt":
        if settings.int8:
            raise ExportInputError("--int8 is for the ONNX Runtime targets; tensorrt builds FP16")
        if settings.device == "cpu":
            raise ExportInputError("--target tensorrt runs on a GPU: drop --device cpu")
        return TensorRTTarget(batch=settings.batch, seq=settings.seq)
    raise ExportInputError(f"unknown target {name!r} (choose from {', '.join(TARGET_NAMES)})")
