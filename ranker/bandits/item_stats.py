"""Per-item shows and rewards, the state that count-based policies learn from.

Bounded: the least recently touched items are forgotten first, so memory stays flat however
large the catalogue that passes through the ranker.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class ItemStatsStore(Protocol):
    def counts(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shows, reward sums) for each item, zeros for items never seen."""
        ...

    def record_shows(self, item_ids: Sequence[str]) -> None: ...

    def record_reward(self, item_id: str, reward: float) -> None: ...

    @property
    def total_shows(self) -> float: ...


class InMemoryItemStats:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._stats: OrderedDict[str, list[float]] = OrderedDict()
        self._total_shows = 0.0

    @property
    def total_shows(self) -> float:
        return self._total_shows

    def counts(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        empty = (0.0, 0.0)
        pairs = np.array([self._stats.get(i, empty) for i in item_ids], dtype=np.float64)
        return pairs[:, 0], pairs[:, 1]

    def record_shows(self, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            self._entry(item_id)[0] += 1.0
        self._total_shows += len(item_ids)

    def record_reward(self, item_id: str, reward: float) -> None:
        self._entry(item_id)[1] += reward

    def _entry(self, item_id: str) -> list[float]:
        entry = self._stats.get(item_id)
        if entry is None:
            entry = self._stats[item_id] = [0.0, 0.0]
            if len(self._stats) > self.capacity:
                self._stats.popitem(last=False)
        else:
            self._stats.move_to_end(item_id)
        return entry
