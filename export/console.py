"""What every `python -m export` command shares on the console: its exit codes, one-line errors
for bad flags, integer flags with bounds, progress on stderr and the `error:` line."""

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from export.errors import ExportInputError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """Reports bad flags like every other bad input: one `error:` line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise ExportInputError(f"{message} (see --help)")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
