"""Serving targets: how the exported ONNX graph becomes a Triton version dir.

A new target (tensorrt, onnxruntime) is one module implementing `Target` plus one entry in
`TARGETS`; the CLI's --target choices, config.pbtxt and manifest follow from it.
"""

from pathlib import Path
from typing import Protocol

from export.model_config import ServingOptions
from export.targets.python_ort import PythonOrtTarget


class Target(Protocol):
    name: str
    precision: str
    backend_lines: tuple[str, ...]  # config.pbtxt `backend:` or `platform:` lines
    instance_kind: str

    def parameters(self, options: ServingOptions) -> dict[str, str]:
        """config.pbtxt `parameters` entries, read by the served model at load time."""
        ...

    def write_version_files(self, onnx_path: Path, version_dir: Path) -> None:
        """Everything the backend loads from the version dir (tokenizer and manifest aside)."""
        ...


TARGETS: dict[str, Target] = {target.name: target for target in (PythonOrtTarget(),)}
DEFAULT_TARGET = "python-ort"
