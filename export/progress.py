"""Progress bars for the slow steps, on stderr so stdout keeps only the final result line.

tqdm's `disable=None` hides them when stderr is not a terminal (CI logs, tests, pipes).
"""

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

Item = TypeVar("Item")


def progress_bar(items: Iterable[Item], description: str) -> Iterable[Item]:
    return tqdm(items, desc=description, file=sys.stderr, disable=None, leave=False)


@contextmanager
def progress_step(description: str) -> Iterator[tqdm]:
    """One bar for a step that reports no progress of its own; it shows the time taken."""
    with tqdm(
        total=1,
        desc=description,
        file=sys.stderr,
        disable=None,
        bar_format="{desc}: {elapsed}",
    ) as bar:
        yield bar
        bar.update()
