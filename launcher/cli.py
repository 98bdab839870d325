"""`triton-launch`: serve a model repository with tritonserver until interrupted.

Useful where the NGC container is not: it finds the server bundled in the pytriton wheel, lays
out its Python backend, and stops it cleanly on Ctrl-C or SIGTERM so no stub processes or
shared-memory regions are left behind.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from launcher.install import find_tritonserver
from launcher.triton import MODEL_CONTROL_MODES, TritonServer, TritonStartError

USAGE_ERROR = 2
RUNTIME_ERROR = 1
LIVENESS_POLL_SECONDS = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-launch",
        description="Serve a Triton model repository until SIGINT or SIGTERM. "
        "Arguments after `--` go to tritonserver unchanged.",
    )
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--grpc-port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--http-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="0 picks a free port")
    parser.add_argument("--address", default="127.0.0.1", help="interface to bind")
    parser.add_argument(
        "--model-control",
        choices=MODEL_CONTROL_MODES,
        default="none",
        help="explicit lets `python -m export rollout` load and retire versions (default: none)",
    )
    parser.add_argument(
        "--load-model",
        action="append",
        metavar="NAME",
        help="with --model-control explicit: a model to load at start, repeatable "
        "(default: every model in the repository)",
    )
    parser.add_argument("--backend-directory", type=Path, default=None)
    parser.add_argument("--log-file", type=Path, default=None)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run tritonserver this much below our CPU priority, so that on a shared host its "
        "bursts delay embeddings rather than the ranker's answers (default: 0)",
    )
    return parser


def startup_models(args: argparse.Namespace, passthrough: Sequence[str]) -> list[str]:
    """tritonserver flags for the models to load at start: in explicit mode it loads none
    unless told, and a rollout needs the served model loaded before it can move it."""
    if args.model_control != "explicit" or any(
        flag.startswith("--load-model") for flag in passthrough
    ):
        return []
    return [f"--load-model={name}" for name in args.load_model or ["*"]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run until a stop signal; 0 on a clean stop, 1 if the server fails, 2 on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, passthrough = argv[:split], argv[split + 1 :]
    args = build_parser().parse_args(argv)

    if args.load_model and args.model_control != "explicit":
        print("error: --load-model needs --model-control explicit", file=sys.stderr)
        return USAGE_ERROR
    if not args.model_repository.is_dir():
        print(f"error: model repository not found: {args.model_repository}", file=sys.stderr)
        return USAGE_ERROR
    if find_tritonserver() is None:
        print(
            "error: no tritonserver found: install the 'triton-cpu' extra or set $TRITONSERVER",
            file=sys.stderr,
        )
        return USAGE_ERROR

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())

    server = TritonServer(
        args.model_repository,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        backend_dir=args.backend_directory,
        model_control=args.model_control,
        log_file=args.log_file,
        extra_args=[*startup_models(args, passthrough), *passthrough],
        address=args.address,
        niceness=args.nice,
    )
    try:
        server.start(timeout=args.startup_timeout)
    except (TritonStartError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return RUNTIME_ERROR

    print(f"tritonserver ready (pid {server.pid})", flush=True)
    print(f"  grpc     {server.grpc_url}", flush=True)
    print(f"  http     {server.http_url}", flush=True)
    print(f"  metrics  {server.metrics_url}", flush=True)
    print(f"  log      {server.log_path}", flush=True)
    while not stop_requested.wait(LIVENESS_POLL_SECONDS):
        if not server.running:
            code = server.stop()
            print(f"error: tritonserver exited unexpectedly with code {code}", file=sys.stderr)
            return RUNTIME_ERROR
    server.stop()
    print("tritonserver stopped", flush=True)
    return 0
