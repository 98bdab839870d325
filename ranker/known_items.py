"""Remembers item texts by id, so that clients may send an item already seen by id alone."""

from __future__ import annotations

from collections import OrderedDict


class KnownItems:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._texts: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    def remember(self, item_id: str, text: str) -> None:
        self._texts[item_id] = text
        self._texts.move_to_end(item_id)
        while len(self._texts) > self.capacity:
            self._texts.popitem(last=False)

    def text(self, item_id: str) -> str | None:
        return self._texts.get(item_id)
