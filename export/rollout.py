"""`python -m export rollout|rollback`: move a served encoder to another version, dropping nothing.

Reloading a model in place is not zero-downtime, so a move goes through a state where both
versions serve: load the target beside the served versions, warm it with real inferences, let
the rankers switch (they serve the newest ready version and key their cache by it), and only
then retire the old versions. Moving to an older version cannot switch the rankers while the
newer one serves, so there the newer one is retired first and the rankers follow on their next
poll. Any failure restores the versions that were served before: never nothing. A rollback
then moves every version above its target aside (renamed `rolled-back-N`, which Triton ignores),
so that a restart does not serve them again; so does a failed rollout with its target, when that
is newer than what Triton serves.

Exit codes: 0 moved or already there, 1 a step failed (the old versions still serve),
2 bad input, 130 interrupted. Progress goes to stderr, the result line to stdout.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import NoReturn

from export.cli import DEFAULT_MODEL_NAME, DEFAULT_REPOSITORY, SUBCOMMANDS
from export.console import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    OneLineParser,
    fail,
    int_in,
    log,
)
from export.errors import ExportInputError
from export.repository import set_aside
from export.rollout_ranker import wait_for_version
from export.rollout_triton import ModelControl, RolloutError


def build_parser(command: str) -> argparse.ArgumentParser:
    toward = (
        "the newest version in --repository"
        if command == "rollout"
        else ("the newest version in --repository below the newest one served")
    )
    parser = OneLineParser(
        prog=f"python -m export {command}",
        description=(
            f"Move the model Triton serves to another version ({toward} by default) without a "
            "failed request. Triton must run with --model-control-mode=explicit."
        ),
    )
    parser.add_argument("--triton-url", default="localhost:8001", help="Triton's gRPC host:port")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--version", type=int_in(1), help=f"default: {toward}")
    parser.add_argument(
        "--ranker-url",
        action="append",
        default=[],
        help="host:port of a ranker to watch switch (repeat for every replica)",
    )
    parser.add_argument(
        "--switch-timeout-s",
        type=_seconds,
        default=30.0,
        help="how long a ranker may take to answer with the new version (default: 30)",
    )
    parser.add_argument(
        "--settle-s",
        type=_seconds,
        default=5.0,
        help=(
            "without --ranker-url: how long both versions serve before the old one retires; "
            "keep it above the rankers' --model-poll-ms (default: 5)"
        ),
    )
    parser.add_argument(
        "--drain-s",
        type=_seconds,
        default=1.0,
        help="after the rankers switched, time for their requests to the old version (default: 1)",
    )
    parser.add_argument(
        "--load-timeout-s",
        type=_seconds,
        default=300.0,
        help="limit for one load or warm-up call to Triton (default: 300)",
    )
    return parser


def main(argv: list[str]) -> int:
    """`argv[0]` is "rollout" or "rollback"; the rest are its flags."""
    try:
        command, *flags = argv
        if command not in SUBCOMMANDS:
            raise ExportInputError(f"unknown command {command!r}: expected one of {SUBCOMMANDS}")
        args = build_parser(command).parse_args(flags)
        return _run(command, args)
    except ExportInputError as error:
        return fail(str(error), EXIT_BAD_INPUT)
    except RolloutError as error:
        return fail(str(error), EXIT_FAILED)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)


def _run(command: str, args: argparse.Namespace) -> int:
    available = version_dirs(args.repository, args.model_name)
    if args.version is not None and args.version not in available:
        raise ExportInputError(
            f"no version {args.version} in {args.repository / args.model_name} "
            f"(versions there: {available or 'none'})"
        )
    control = ModelControl(args.triton_url, args.repository, args.model_name, args.load_timeout_s)
    try:
        served = control.ready_versions()
        log(f"Triton at {args.triton_url} serves {args.model_name} versions {served or 'none'}")
        target = args.version or _default_target(command, available, served)
        if served == [target]:
            print(f"already serving {args.model_name} version {target}")
            return 0
        try:
            _move(control, args, served, target)
        except RolloutError:
            # A restart serves the newest version, which must not be one that just failed
            # (Triton itself may be what failed: it can die reloading the versions it served).
            if target > max(served, default=0):
                _set_aside(args.repository / args.model_name, target)
            raise
    finally:
        control.close()
    retired = [version for version in served if version != target]
    if command == "rollback":
        _set_aside_above(args.repository / args.model_name, target)
    print(f"{command} done: {args.model_name} serves version {target} (retired {retired})")
    return 0


def _set_aside_above(model_dir: Path, target: int) -> None:
    """A rollback sticks: every version above the target leaves Triton's view, or a restart
    (whose version policy serves the newest) would bring back what was rolled back."""
    for version in version_dirs(model_dir.parent, model_dir.name):
        if version > target:
            _set_aside(model_dir, version)


def _set_aside(model_dir: Path, version: int) -> None:
    try:
        aside = set_aside(model_dir, version)
        log(f"moved version {version} aside to {aside}; rename it back to serve it again")
    except OSError as error:
        log(f"warning: version {version} stays in {model_dir} ({error}): a restart serves it")


def version_dirs(repository: Path, model_name: str) -> list[int]:
    """The published versions: numbered directories of the model."""
    model_dir = repository / model_name
    if not model_dir.is_dir():
        raise ExportInputError(f"{model_dir} is not a directory")
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _default_target(command: str, available: list[int], served: list[int]) -> int:
    if command == "rollout":
        if not available:
            raise ExportInputError("no published version to roll out; run `python -m export`")
        return available[-1]
    if not served:
        raise RolloutError("Triton serves no version, so there is nothing to roll back from")
    older = [version for version in available if version < max(served)]
    if not older:
        raise RolloutError(f"no version below {max(served)} to roll back to")
    return older[-1]


def _move(control: ModelControl, args: argparse.Namespace, served: list[int], target: int) -> None:
    name = control.model_name
    log(f"loading {name} version {target} beside {served or 'nothing'} ...")
    try:
        control.serve([*served, target])
        log(f"warming {name} version {target} ...")
        control.warm(target)
    except RolloutError as error:
        _restore(control, served, f"version {target} did not load or warm: {error}")
    label = f"{name}:{target}"
    if target > max(served, default=0):
        # The rankers prefer the newest ready version: they switch while both serve.
        _switch_rankers(control, args, served, label)
        time.sleep(args.drain_s)
        log(f"retiring {served} ...")
        control.serve([target])
    else:
        log(f"retiring {[version for version in served if version != target]} ...")
        control.serve([target])
        _switch_rankers(control, args, served, label)


def _switch_rankers(
    control: ModelControl, args: argparse.Namespace, served: list[int], label: str
) -> None:
    if not args.ranker_url:
        log(f"waiting {args.settle_s:g} s for the rankers to pick up {label} ...")
        time.sleep(args.settle_s)
        return
    for url in args.ranker_url:
        log(f"waiting for the ranker at {url} to answer with {label} ...")
        seen = wait_for_version(url, label, args.switch_timeout_s, log)
        if seen != label:
            _restore(
                control,
                served,
                f"the ranker at {url} still answers with {seen or 'nothing'} after "
                f"{args.switch_timeout_s:g} s, not {label}",
            )


def _restore(control: ModelControl, served: list[int], reason: str) -> NoReturn:
    """Puts back the versions served before the move, then fails with `reason`."""
    before = f"versions {served}" if served else "no version"
    log(f"{reason}; restoring {before} ...")
    try:
        control.serve(served)
    except RolloutError as error:
        raise RolloutError(f"{reason}; restoring {before} failed too: {error}") from None
    raise RolloutError(f"{reason}; {before} served, as before")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be zero or more seconds")
    return value
