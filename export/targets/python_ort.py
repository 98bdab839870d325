"""python-ort: ONNX Runtime inside Triton's Python backend.

It runs on any tritonserver with the Python backend, including the one bundled with PyTriton,
which ships no onnxruntime backend.
"""

import shutil
from pathlib import Path

from export.model_config import ServingOptions

MODEL_SOURCE = Path(__file__).with_name("python_ort_model.py")


class PythonOrtTarget:
    name = "python-ort"
    precision = "fp32"
    backend_lines = ('backend: "python"',)
    instance_kind = "KIND_CPU"

    def parameters(self, options: ServingOptions) -> dict[str, str]:
        return {"intra_op_threads": str(options.threads)}

    def write_version_files(self, onnx_path: Path, version_dir: Path) -> None:
        shutil.copyfile(onnx_path, version_dir / "model.onnx")
        shutil.copyfile(MODEL_SOURCE, version_dir / "model.py")
