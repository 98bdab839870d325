"""Building and running a TensorRT engine; imported only where `tensorrt` and a GPU exist.

The engine's inputs and output keep the ONNX names and types (INT64 ids and mask, FP32
embedding), so Triton's config and the ranker are the same as for the other targets.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tensorrt as trt
import torch
from tqdm import tqdm

from export.errors import ExportFailure
from export.model_config import INPUT_NAMES, OUTPUT_NAME
from export.targets.mixed_precision import fp32_node_names
from export.targets.shape_profile import ShapeProfile

_LOGGER = trt.Logger(trt.Logger.WARNING)
_FP32_LAYER_TYPES = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}
_FP32_ELEMENTWISE = {trt.ElementWiseOperation.POW, trt.ElementWiseOperation.DIV}
_FLOAT_TYPES = {trt.float32, trt.float16}


class EngineBuildError(ExportFailure):
    """TensorRT refused the graph or the build; the message says which."""


def build_engine(
    onnx_path: Path,
    plan_path: Path,
    *,
    batch: ShapeProfile,
    seq: ShapeProfile,
    timing_cache: Path,
    strongly_typed: bool,
) -> dict[str, Any]:
    """Writes plan_path and returns what the manifest records about the engine."""
    builder = trt.Builder(_LOGGER)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _LOGGER)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        _pin_fp32(network, fp32_node_names(onnx.load(str(onnx_path), load_external_data=False)))
    profile = builder.create_optimization_profile()
    for name in INPUT_NAMES:
        profile.set_shape(name, (batch.min, seq.min), (batch.opt, seq.opt), (batch.max, seq.max))
    config.add_optimization_profile(profile)
    _use_timing_cache(config, timing_cache)
    config.progress_monitor = _ProgressBars()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError("TensorRT could not build the engine (its log above says why)")
    plan_path.write_bytes(bytes(serialized))
    _save_timing_cache(config, timing_cache)
    major, minor = torch.cuda.get_device_capability()
    return {
        "version": trt.__version__,
        "gpu": torch.cuda.get_device_name(),
        "compute_capability": f"{major}.{minor}",
        "timing_cache": str(timing_cache),
    }


class EngineRunner:
    """Runs model.plan on the current GPU with torch tensors as device buffers."""

    def __init__(self, plan_path: Path) -> None:
        self.engine = trt.Runtime(_LOGGER).deserialize_cuda_engine(plan_path.read_bytes())
        if self.engine is None:
            raise EngineBuildError(
                f"TensorRT {trt.__version__} cannot load {plan_path}: an engine runs only on the "
                "TensorRT version and GPU model it was built with (see the manifest)"
            )
        self.context = self.engine.create_execution_context()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {
            name: torch.from_numpy(np.ascontiguousarray(array)).cuda()
            for name, array in zip(INPUT_NAMES, (input_ids, attention_mask), strict=True)
        }
        for name, tensor in feeds.items():
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        output = torch.empty(
            tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.float32, device="cuda"
        )
        self.context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineBuildError("TensorRT failed to run the engine")
        stream.synchronize()
        return output.cpu().numpy()


def _pin_fp32(network: trt.INetworkDefinition, node_names: set[str]) -> None:
    """The ONNX parser names each layer after its node (helper layers get the node name plus a
    suffix), so the ONNX-level choice carries over; layer types catch what names do not."""
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if not any(output.dtype in _FLOAT_TYPES for output in outputs):
            continue
        if not (_fp32_by_type(layer) or _named_after(layer.name, node_names)):
            continue
        layer.precision = trt.float32
        for i, output in enumerate(outputs):
            if output.dtype in _FLOAT_TYPES:
                layer.set_output_type(i, trt.float32)


def _fp32_by_type(layer: trt.ILayer) -> bool:
    if layer.type in _FP32_LAYER_TYPES:
        return True
    if layer.type == trt.LayerType.ELEMENTWISE:
        layer.__class__ = trt.IElementWiseLayer
        return layer.op in _FP32_ELEMENTWISE
    if layer.type == trt.LayerType.UNARY:
        layer.__class__ = trt.IUnaryLayer
        return layer.op == trt.UnaryOperation.SQRT
    return False


def _named_after(layer_name: str, node_names: set[str]) -> bool:
    return layer_name in node_names or any(layer_name.startswith(f"{name}_") for name in node_names)


def _use_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    """Reused across exports: later builds of the same shapes skip most kernel timing. TensorRT
    refuses a cache from another version or GPU; the build then starts from an empty one."""
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def _save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # a first export creates the repository
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(temporary, path)


class _ProgressBars(trt.IProgressMonitor):
    """TensorRT reports nested build phases; each gets a tqdm bar on stderr."""

    def __init__(self) -> None:
        trt.IProgressMonitor.__init__(self)
        self._bars: dict[str, tqdm] = {}

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        self._bars[phase_name] = tqdm(
            total=num_steps, desc=phase_name, disable=None, leave=False, position=len(self._bars)
        )

    def step_complete(self, phase_name: str, step: int) -> bool:
        bar = self._bars.get(phase_name)
        if bar is not None:
            bar.update(step + 1 - bar.n)
        return True  # False would cancel the build

    def phase_finish(self, phase_name: str) -> None:
        bar = self._bars.pop(phase_name, None)
        if bar is not None:
            bar.close()
