"""Remembers item texts by id, so that clients may send an item already seen by id alone.

`ItemTexts` is the store's interface: `KnownItems` keeps them in this process, and
`SharedKnownItems` (shared_known_items.py) in one file that every worker process reads, so an id
learned from a request to one worker resolves on all of them.
"""

from __future__ import annotations

import csv
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class ItemTexts(Protocol):
    def remember(self, texts: dict[str, str]) -> None:
        """Texts by item id, now the most recent; the least recently given are forgotten."""
        ...

    def text(self, item_id: str) -> str | None: ...


class KnownItems:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._texts: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    def remember(self, texts: dict[str, str]) -> None:
        entries = self._texts
        # Most requests bring only texts already known: one comparison in C finds that, and
        # spares writing every entry again.
        if not self.knows(texts):
            entries.update(texts)
        self.refresh(texts)
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def refresh(self, item_ids: Iterable[str]) -> None:
        """Marks items already held as the most recently given."""
        # Every item of a request is touched: the loop runs in C (a request has hundreds).
        deque(map(self._texts.move_to_end, item_ids), maxlen=0)

    def text(self, item_id: str) -> str | None:
        return self._texts.get(item_id)

    def knows(self, texts: dict[str, str]) -> bool:
        """Whether every one of these texts is held already, for the same id."""
        return self._texts.items() >= texts.items()


def load_catalogue(store: ItemTexts, path: Path) -> int:
    """Items from a CSV with `item_id` and `text` columns, so clients may send ids alone."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"item_id", "text"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: needs the columns item_id and text")
        texts = {
            row["item_id"]: row["text"].strip()
            for row in reader
            if row["item_id"] and row["text"].strip()
        }
    store.remember(texts)
    return len(texts)


def load_catalogue_setting(store: ItemTexts, catalogue: str) -> None:
    """The `catalogue` setting's items into `store`, reported on stderr; none when it is empty.
    Raises ValueError or OSError for a bad file."""
    if catalogue:
        loaded = load_catalogue(store, Path(catalogue))
        print(f"loaded {loaded} items from {catalogue}", file=sys.stderr)
