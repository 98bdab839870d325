"""onnxruntime: `platform: "onnxruntime_onnx"`, for the ONNX Runtime backend of NVIDIA's Triton
container (the tritonserver bundled with PyTriton has none: use python-ort there).

It defaults to KIND_GPU, because the container is the GPU deployment; `--device cpu` (and
`--int8`, whose kernels are CPU-only) gives KIND_CPU. The parity gate runs the file on ONNX
Runtime's CPU provider; the CUDA provider's fp32 kernels differ from it in rounding only.
"""

from pathlib import Path
from typing import Any

from export.model_config import Embedder, ServingOptions
from export.targets import BuildContext
from export.targets.ort_graph import OnnxRuntimeServed, ort_embedder
from export.targets.python_ort import MODEL_FILE, write_ort_model


class OnnxRuntimeTarget(OnnxRuntimeServed):
    name = "onnxruntime"
    backend_lines = ('platform: "onnxruntime_onnx"',)
    ragged_inputs = False

    def __init__(self, *, int8: bool = False, device: str = "gpu") -> None:
        super().__init__(int8=int8)
        self.instance_kind = "KIND_GPU" if device == "gpu" else "KIND_CPU"

    def parameters(self, options: ServingOptions) -> dict[str, str]:
        # The backend's own key; 0 keeps ONNX Runtime's default.
        return {"intra_op_thread_count": str(options.threads)}

    def build(self, onnx_path: Path, out_dir: Path, context: BuildContext) -> dict[str, Any]:
        details = write_ort_model(onnx_path, out_dir / MODEL_FILE, self.precision, context)
        return {**details, "instance_kind": self.instance_kind}

    def embedders(self, version_dir: Path) -> dict[str, Embedder]:
        return {MODEL_FILE: ort_embedder(version_dir / MODEL_FILE)}
