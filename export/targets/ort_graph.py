"""ONNX Runtime work on the exported graph: int8 quantisation, offline optimisation, running it."""

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from export.model_config import INPUT_NAMES, OUTPUT_NAME, Embedder

# Extended fusions are generic CPU-EP graph rewrites; the "all" level adds layout changes tied
# to the exporting machine's CPU, so an offline graph stops at extended. Its contrib ops still tie
# it to the ONNX Runtime version that wrote it: the manifest records that version.
OFFLINE_LEVEL = "extended"


class OnnxRuntimeServed:
    """What the two ONNX Runtime targets share: fp32 or int8, any sequence length, and no tool
    beyond the export extra's own onnxruntime."""

    min_opset = 14  # scaled_dot_product_attention's export needs it

    def __init__(self, *, int8: bool = False) -> None:
        self.precision = "int8" if int8 else "fp32"

    def check_ready(self) -> None:
        """Nothing to check: onnxruntime is a dependency of the export extra."""

    def fit_sequence_length(self, longest: int, shortest: int) -> int:
        return longest


# The ops dynamic int8 may take: projections, and whole attention blocks once fused.
INT8_OPS = ("MatMul", "Attention")


def fuse_transformer(source: Path, destination: Path, *, num_heads: int, hidden_size: int) -> dict:
    """ONNX Runtime's transformer optimizer rewrites attention, LayerNorm and GELU subgraphs into
    its contrib kernels (Attention, SkipLayerNormalization, BiasGelu), which its session-level
    optimisation never does for attention: 15% more fp32 throughput on MiniLM here, and int8 can
    then quantise whole attention blocks. A graph it does not recognise is saved unchanged, so
    the parity gate still judges every result. Returns the fused op counts, for the manifest."""
    from onnxruntime.transformers.optimizer import optimize_model

    logging.disable(logging.WARNING)  # it warns about each pattern it does not find
    try:
        model = optimize_model(
            str(source),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            opt_level=0,
            use_gpu=False,
        )
    finally:
        logging.disable(logging.NOTSET)
    model.save_model_to_file(str(destination))
    return {op: count for op, count in model.get_fused_operator_statistics().items() if count}


def int8_candidates(source: Path) -> list[str]:
    """The nodes that `quantize_int8` would quantise, in graph order."""
    return [node.name for node in onnx.load(str(source)).graph.node if node.op_type in INT8_OPS]


def quantize_int8(source: Path, destination: Path, *, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic int8 of the MatMul and Attention weights, one scale per output channel: per-tensor
    scales lose too much on BERT's projections (one outlier column sets the scale of the whole
    matrix). Embedding tables (Gather) stay fp32: ONNX Runtime quantises those per tensor only,
    and a lookup gains no speed from int8. `keep_fp32` names nodes left as they are."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It warns on every call that pre-processing may help; its shape inference is not needed here.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            source,
            destination,
            op_types_to_quantize=list(INT8_OPS),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_fp32),
            # Shape inference cannot type the outputs of fused contrib ops; they are all fp32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)


def optimize_offline(source: Path, destination: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(destination)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def ort_embedder(path: Path, *, optimized_offline: bool = False) -> Embedder:
    """A graph optimised offline is loaded without optimising it again, as Triton's model does."""
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if optimized_offline
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = dict(zip(INPUT_NAMES, (input_ids, attention_mask), strict=True))
        return session.run([OUTPUT_NAME], feeds)[0]

    return embed
