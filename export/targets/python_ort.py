"""python-ort: ONNX Runtime inside Triton's Python backend.

It runs on any tritonserver with the Python backend, including the one bundled with PyTriton,
which ships no onnxruntime backend. The version dir holds the graph twice: `model.onnx`, fused
into ONNX Runtime's transformer kernels (any recent ONNX Runtime runs it), and
`model.optimized.onnx`, optimised further here once, which the served model loads instead when its
ONNX Runtime is the version that wrote it (see `python_ort_model.py`): no optimisation at each
load, and nothing written into a version dir that may be read-only, nor into one that serves
(`model.py`'s bytecode comes with it: `write_model_source`).
"""

import py_compile
import shutil
from pathlib import Path
from typing import Any

import onnxruntime

from export.model_config import Embedder, ServingOptions
from export.targets import BuildContext
from export.targets.int8_selection import quantize_within_gate
from export.targets.ort_graph import (
    OFFLINE_LEVEL,
    OnnxRuntimeServed,
    fuse_transformer,
    optimize_offline,
    ort_embedder,
)

MODEL_SOURCE = Path(__file__).with_name("python_ort_model.py")
MODEL_FILE = "model.onnx"
OPTIMIZED_FILE = "model.optimized.onnx"


class PythonOrtTarget(OnnxRuntimeServed):
    name = "python-ort"
    backend_lines = ('backend: "python"',)
    instance_kind = "KIND_CPU"
    ragged_inputs = True

    def parameters(self, options: ServingOptions) -> dict[str, str]:
        return {"intra_op_threads": str(options.threads), "allow_spinning": "0"}

    def build(self, onnx_path: Path, out_dir: Path, context: BuildContext) -> dict[str, Any]:
        served = out_dir / MODEL_FILE
        details = write_ort_model(onnx_path, served, self.precision, context)
        context.log(f"optimising the graph offline ({OFFLINE_LEVEL}, CPU)...")
        optimize_offline(served, out_dir / OPTIMIZED_FILE)
        write_model_source(out_dir / "model.py")
        return {
            **details,
            "ort_optimized": {
                "file": OPTIMIZED_FILE,
                "level": OFFLINE_LEVEL,
                "execution_provider": "CPUExecutionProvider",
                "onnxruntime": onnxruntime.__version__,
            },
        }

    def embedders(self, version_dir: Path) -> dict[str, Embedder]:
        return {
            OPTIMIZED_FILE: ort_embedder(version_dir / OPTIMIZED_FILE, optimized_offline=True),
            MODEL_FILE: ort_embedder(version_dir / MODEL_FILE),
        }


def write_model_source(destination: Path) -> None:
    """model.py and its bytecode, hash-checked so that copies which change mtimes keep it valid.
    Without it, Python writes the bytecode into the version dir on Triton's first load; Triton
    then counts the served version as changed and, on the next load request for the model (a
    rollout), loads a second copy of it, and discards that copy if a version loaded with it
    fails: the CPU tritonserver crashed there now and then. This is the bytecode of the
    interpreter that the bundled tritonserver's Python backend embeds; the Dockerfile compiles
    the repository for the container's."""
    shutil.copyfile(MODEL_SOURCE, destination)
    py_compile.compile(
        str(destination),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )


def write_ort_model(
    onnx_path: Path, destination: Path, precision: str, context: BuildContext
) -> dict[str, Any]:
    """The fused graph, or its int8 quantisation: the file ONNX Runtime serves. Returns what the
    manifest records about it."""
    context.log("fusing attention, LayerNorm and GELU for ONNX Runtime...")
    fused_path = destination.with_name(f"fused-{destination.name}")
    fused = fuse_transformer(
        onnx_path, fused_path, num_heads=context.num_heads, hidden_size=context.hidden_size
    )
    details: dict[str, Any] = {"ort_fused_ops": fused}
    if precision == "int8":
        context.log("quantising to int8 (dynamic, per-channel weights)...")
        details |= quantize_within_gate(fused_path, destination, context)
        fused_path.unlink()
    else:
        fused_path.replace(destination)
    return details
