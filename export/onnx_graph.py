"""The served graph: encoder, attention-masked mean pooling and L2 normalisation, as one ONNX model.

Pooling lives in the graph so every target returns ready-to-use unit vectors and the ranker never
sees token-level hidden states.
"""

import inspect
import warnings
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from export.model_config import INPUT_NAMES, OUTPUT_NAME

# Keeps an all-padding row (mask sum 0) and a zero vector from dividing by zero.
POOL_EPSILON = 1e-9
NORM_EPSILON = 1e-12


class EmbeddingGraph(torch.nn.Module):
    def __init__(self, encoder: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = encoder
        # DistilBERT takes no token_type_ids; the others get zeros so ONNX keeps two inputs.
        self.feeds_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters
        # A new Module starts in training mode, and torch.onnx.export restores the mode it found,
        # which would switch the encoder's dropout on after export.
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        token_types = (
            {"token_type_ids": torch.zeros_like(input_ids)} if self.feeds_token_types else {}
        )
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **token_types
        ).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=POOL_EPSILON)
        return F.normalize(mean, p=2.0, dim=1, eps=NORM_EPSILON)


def export_onnx(graph: EmbeddingGraph, path: Path, opset: int) -> None:
    """Uses the TorchScript exporter: the dynamo one needs onnxscript, which the export extra
    does not install. Its tracer warnings are silenced because the parity gate checks the result.
    """
    # Batch 2 with one padded row, so the trace sees a real mask; shapes stay dynamic.
    input_ids = torch.ones((2, 8), dtype=torch.int64)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (input_ids, attention_mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    _pin_hidden_dim(path, graph.encoder.config.hidden_size)
    onnx.checker.check_model(str(path), full_check=True)


def _pin_hidden_dim(path: Path, hidden_size: int) -> None:
    """The tracer leaves the embedding width symbolic; backends that read shapes from the graph
    (ORT, TensorRT) and config.pbtxt's dims: [hidden] want the fixed number."""
    model = onnx.load(str(path))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = hidden_size
    onnx.save(model, str(path))
