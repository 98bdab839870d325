"""The FP16 graph for a strongly typed TensorRT network (TensorRT 11 has no FP16 builder flag).

Everything runs in FP16 except what overflows or loses too much there: LayerNorm and its
reduce/pow/sqrt/div parts, softmax, the pooling and normalisation sums, and the attention-mask
arithmetic, whose "minus the largest float" for padded positions is -inf in FP16. The same node
names tell TensorRT 10 which layers to pin to FP32 under its FP16 flag.

ONNX Runtime runs this graph on the CPU, but its CPU provider has few FP16 kernels and wraps the
rest in casts to FP32: a CPU check covers the graph, its FP32 islands and the FP16 rounding of the
weights, not FP16 arithmetic. bench/gpu/check.sh measures that on a GPU.
"""

from pathlib import Path

import onnx

from export.model_config import INPUT_NAMES

FP32_OP_TYPES = frozenset(
    {
        "LayerNormalization",
        "Softmax",
        "ReduceMean",
        "ReduceSum",
        "ReduceL2",
        "Pow",
        "Sqrt",
        "Div",
        "Clip",  # the norm's epsilon clamp: in FP16 it rounds the norm the output is divided by
    }
)
# Outputs that are shapes, not data: a node reading only these and the mask is still mask-only.
_SHAPE_OP_TYPES = frozenset({"Shape", "Size"})


def mask_arithmetic_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes computed from the attention mask (and constants or shapes) only, plus the first
    nodes where the mask meets the hidden states (adding it to the attention scores, weighting
    the pooling), found by following the data from the two inputs."""
    mask_input, ids_input = INPUT_NAMES[1], INPUT_NAMES[0]
    source = {mask_input: "mask", ids_input: "data"}
    blocked = []
    for node in model.graph.node:  # ONNX keeps nodes in topological order
        if node.op_type in _SHAPE_OP_TYPES:
            continue
        kinds = {source[name] for name in node.input if name in source}
        if not kinds:
            continue
        if "mask" in kinds:
            blocked.append(node.name)
        for output in node.output:
            source[output] = "mask" if kinds == {"mask"} else "data"
    return blocked


def fp32_node_names(model: onnx.ModelProto) -> set[str]:
    return {n.name for n in model.graph.node if n.op_type in FP32_OP_TYPES} | set(
        mask_arithmetic_nodes(model)
    )


def write_mixed_precision(source: Path, destination: Path) -> None:
    """FP16 weights and activations, with FP32 islands; the inputs stay INT64 and `embedding`
    stays FP32, so the served interface does not change."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | FP32_OP_TYPES),
        node_block_list=mask_arithmetic_nodes(model),
    )
    _sort_topologically(converted.graph)
    onnx.save(converted, str(destination))
    onnx.checker.check_model(str(destination))


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """The converter appends its Cast nodes at the end; ONNX (and TensorRT's parser) wants every
    node after the producers of its inputs."""
    available = {value.name for value in graph.input} | {t.name for t in graph.initializer}
    available.add("")  # an omitted optional input
    pending, ordered = list(graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ValueError(f"the FP16 graph has a cycle or a missing input at {pending[0].name}")
        for node in ready:
            available.update(node.output)
            copy = onnx.NodeProto()
            copy.CopyFrom(node)  # the originals go when the node list is cleared below
            ordered.append(copy)
        done = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in done]
    del graph.node[:]
    graph.node.extend(ordered)
