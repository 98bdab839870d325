"""tensorrt: an FP16 TensorRT engine, `model.plan` with `platform: "tensorrt_plan"`, KIND_GPU.

TensorRT gets the plain export (opset 18 or newer), never an ONNX Runtime-fused graph, whose
contrib ops it cannot parse. How FP16 is asked for depends on the installed TensorRT:
- 10: the FP32 graph, `BuilderFlag.FP16`, and FP32 precision constraints on LayerNorm, softmax,
  the reductions and the attention-mask arithmetic (`OBEY_PRECISION_CONSTRAINTS`);
- 11 and newer (no weak typing): the same choice made in the ONNX graph
  (`mixed_precision.write_mixed_precision`) and built as a strongly typed network.
An engine runs only on the TensorRT version and GPU model it was built with; both are recorded.
"""

from pathlib import Path
from typing import Any

from export.errors import ExportInputError
from export.model_config import Embedder, ServingOptions
from export.targets import BuildContext
from export.targets.shape_profile import ShapeProfile

PLAN_FILE = "model.plan"
TIMING_CACHE_NAME = ".trt_timing_cache"  # a file: Triton treats repository dirs as models
MIN_TENSORRT_MAJOR = 10
STRONGLY_TYPED_FROM_MAJOR = 11
DEFAULT_OPT_SEQ_LEN = 32  # titles are 9-24 tokens; TensorRT tunes its kernels for opt shapes


class TensorRTTarget:
    name = "tensorrt"
    precision = "fp16"
    min_opset = 18
    backend_lines = ('platform: "tensorrt_plan"',)
    instance_kind = "KIND_GPU"
    ragged_inputs = False

    def __init__(
        self, *, batch: ShapeProfile | None = None, seq: ShapeProfile | None = None
    ) -> None:
        if batch is not None and batch.min != 1:
            raise ExportInputError(
                f"--batch {batch}: min must be 1, since Triton's batcher sends single requests"
            )
        self.batch, self.seq = batch, seq

    def check_ready(self) -> None:
        tensorrt_version()

    def fit_sequence_length(self, longest: int, shortest: int) -> int:
        if self.seq is None:
            return longest
        if self.seq.max > longest:
            raise ExportInputError(
                f"--seq {self.seq}: max is above the model's maximum sequence length {longest}"
            )
        if self.seq.min > shortest:
            raise ExportInputError(
                f"--seq {self.seq}: min is above {shortest}, the length of an empty text"
            )
        return self.seq.max

    def parameters(self, options: ServingOptions) -> dict[str, str]:
        return {}

    def profiles(self, context: BuildContext) -> tuple[ShapeProfile, ShapeProfile]:
        """Defaults: every batch size up to the configured maximum, tuned for a full batch, and
        every length up to the served maximum, tuned for a short title."""
        batch = self.batch or ShapeProfile(1, context.max_batch_size, context.max_batch_size)
        seq = self.seq or ShapeProfile(
            1, min(DEFAULT_OPT_SEQ_LEN, context.max_seq_len), context.max_seq_len
        )
        return batch, seq

    def build(self, onnx_path: Path, out_dir: Path, context: BuildContext) -> dict[str, Any]:
        from export.targets import tensorrt_engine

        batch, seq = self.profiles(context)
        strongly_typed = int(tensorrt_version().split(".")[0]) >= STRONGLY_TYPED_FROM_MAJOR
        source = onnx_path
        if strongly_typed:
            from export.targets.mixed_precision import write_mixed_precision

            context.log("writing the mixed-precision ONNX graph (FP16, FP32 islands)...")
            source = onnx_path.with_name("model.fp16.onnx")
            write_mixed_precision(onnx_path, source)
        context.log(f"building the TensorRT engine (batch {batch}, seq {seq})...")
        engine = tensorrt_engine.build_engine(
            source,
            out_dir / PLAN_FILE,
            batch=batch,
            seq=seq,
            timing_cache=context.repository / TIMING_CACHE_NAME,
            strongly_typed=strongly_typed,
        )
        return {
            "tensorrt": {
                **engine,
                "mode": "strongly typed, mixed-precision ONNX"
                if strongly_typed
                else "FP16 flag, FP32 precision constraints",
                "profiles": {"batch": str(batch), "seq": str(seq)},
            }
        }

    def embedders(self, version_dir: Path) -> dict[str, Embedder]:
        tensorrt_version()
        from export.targets import tensorrt_engine

        return {PLAN_FILE: tensorrt_engine.EngineRunner(version_dir / PLAN_FILE)}


def tensorrt_version() -> str:
    """The installed TensorRT's version, or the one-line error that it cannot be used here."""
    try:
        import tensorrt
    except ImportError as exc:
        raise ExportInputError(
            f"--target tensorrt needs TensorRT {MIN_TENSORRT_MAJOR} or newer and a CUDA GPU; "
            f"the `tensorrt` Python package cannot be imported here ({exc})"
        ) from None
    version = tensorrt.__version__
    if int(version.split(".")[0]) < MIN_TENSORRT_MAJOR:
        raise ExportInputError(
            f"--target tensorrt needs TensorRT {MIN_TENSORRT_MAJOR} or newer, found {version}"
        )
    import torch

    if not torch.cuda.is_available():
        raise ExportInputError(
            "--target tensorrt needs TensorRT and a CUDA GPU; torch sees no CUDA device here"
        )
    return version
