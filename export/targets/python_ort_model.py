"""Triton Python-backend model: the exported encoder graph on ONNX Runtime, CPU.

`python -m export --target python-ort` copies this file as `model.py` into each version dir.
It depends on numpy and onnxruntime only, since it runs in tritonserver's Python stub.
"""

import json
import os
import time

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "embedding"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        threads = parameters.get("intra_op_threads", {}).get("string_value") or "0"
        # Fault injection for load tests: a config parameter that slows every batch down.
        self.delay_s = float(parameters.get("delay_ms", {}).get("string_value") or "0") / 1000
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path, level = served_graph(version_dir)
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.intra_op_num_threads = int(threads)
        # ONNX Runtime's pool threads spin between ops, holding cores that a CPU Triton often
        # shares with the ranker (whose answers then arrive late); a host of its own may set "1".
        spinning = parameters.get("allow_spinning", {}).get("string_value") or "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests: list) -> list:
        """One ORT run for the whole dynamic batch: per-run overhead is what batching saves."""
        if self.delay_s:
            time.sleep(self.delay_s)
        responses = [None] * len(requests)
        ready = {}
        for index, request in enumerate(requests):
            try:
                ready[index] = read_inputs(request)
            except ValueError as exc:
                responses[index] = error_response(str(exc))
        for index, response in zip(ready, self.embed(list(ready.values())), strict=True):
            responses[index] = response
        return responses

    def embed(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> list:
        """If the merged run fails (say, a token id outside the vocabulary), each request is
        rerun alone, so only the request at fault gets the error."""
        if not batch:
            return []
        try:
            feeds = dict(zip(INPUT_NAMES, merge(batch), strict=True))
            embeddings = self.session.run([OUTPUT_NAME], feeds)[0]
        except Exception as exc:
            if len(batch) == 1:
                return [error_response(f"inference failed: {exc}")]
            return [response for inputs in batch for response in self.embed([inputs])]
        splits = np.cumsum([input_ids.shape[0] for input_ids, _ in batch])[:-1]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, part)])
            for part in np.split(embeddings, splits)
        ]


def served_graph(version_dir: str) -> tuple[str, "ort.GraphOptimizationLevel"]:
    """The export optimised the graph once and recorded which ONNX Runtime did it; its fused
    contrib ops are only safe on that version, so any other runs model.onnx and optimises it at
    load time (in memory: the version dir may be read-only)."""
    try:
        with open(os.path.join(version_dir, "manifest.json"), encoding="utf-8") as file:
            optimized = json.load(file).get("ort_optimized") or {}
    except (OSError, ValueError):
        optimized = {}
    if optimized.get("onnxruntime") == ort.__version__:
        path = os.path.join(version_dir, optimized["file"])
        if os.path.isfile(path):
            return path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return os.path.join(version_dir, "model.onnx"), ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def read_inputs(request) -> tuple[np.ndarray, np.ndarray]:
    input_ids, attention_mask = (_input(request, name) for name in INPUT_NAMES)
    if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape or input_ids.shape[1] == 0:
        raise ValueError(
            f"input_ids {list(input_ids.shape)} and attention_mask {list(attention_mask.shape)} "
            "must share one non-empty [batch, sequence] shape"
        )
    return input_ids.astype(np.int64, copy=False), attention_mask.astype(np.int64, copy=False)


def merge(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pads with 0 to the longest sequence in this batch, not a fixed length, so a batch of
    short titles stays cheap; the graph's attention mask and mean pooling ignore the padding."""
    longest = max(input_ids.shape[1] for input_ids, _ in batch)

    def pad(array: np.ndarray) -> np.ndarray:
        return np.pad(array, ((0, 0), (0, longest - array.shape[1])))

    return (
        np.concatenate([pad(input_ids) for input_ids, _ in batch]),
        np.concatenate([pad(attention_mask) for _, attention_mask in batch]),
    )


def error_response(message: str) -> "pb_utils.InferenceResponse":
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def _input(request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise ValueError(f"missing input {name!r}")
    return tensor.as_numpy()
