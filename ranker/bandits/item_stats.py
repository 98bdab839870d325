"""Per-item shows and rewards, the state that count-based policies learn from.

Bounded: the least recently touched items are forgotten first, so memory stays flat however
large the catalogue that passes through the ranker. Counts live in numpy arrays indexed by a
slot per item, so reading 1,000 candidates' counts is one gather, not 1,000 small lists.

With `discount` below 1 the statistics forget: every recorded slate multiplies all earlier
shows and rewards by `discount` (lazily, per item, when it is next read or touched), which is
how policies follow interests that drift. discount=1 keeps plain cumulative counts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import repeat
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
    def __init__(self, capacity: int, discount: float = 1.0) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.capacity = capacity
        self.discount = discount
        self._slots: OrderedDict[str, int] = OrderedDict()
        # One slot more than items are kept: the last, never assigned, stays zero and is what
        # an unknown item's slot -1 reads, so reading counts needs no mask.
        self._shows = np.zeros(capacity + 1)
        self._rewards = np.zeros(capacity + 1)
        # The slate count at which each slot's counts were last brought up to date.
        self._updated_at = np.zeros(capacity + 1)
        self._slates = 0
        self._total_shows = 0.0

    @property
    def total_shows(self) -> float:
        return self._total_shows

    def counts(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        slots = np.fromiter(
            map(self._slots.get, item_ids, repeat(-1)), dtype=np.int64, count=len(item_ids)
        )
        if self.discount == 1.0:
            return self._shows[slots], self._rewards[slots]
        decay = self.discount ** (self._slates - self._updated_at[slots])
        return self._shows[slots] * decay, self._rewards[slots] * decay

    def record_shows(self, item_ids: Sequence[str]) -> None:
        self._slates += 1
        self._total_shows = self._total_shows * self.discount + len(item_ids)
        for item_id in item_ids:
            self._shows[self._fresh_slot(item_id)] += 1.0

    def record_reward(self, item_id: str, reward: float) -> None:
        self._rewards[self._fresh_slot(item_id)] += reward

    def _fresh_slot(self, item_id: str) -> int:
        """The item's slot with its counts decayed up to now, taking the oldest slot if new."""
        slot = self._slots.get(item_id)
        if slot is None:
            if len(self._slots) < self.capacity:
                slot = len(self._slots)
            else:
                _, slot = self._slots.popitem(last=False)
            self._slots[item_id] = slot
            self._shows[slot] = self._rewards[slot] = 0.0
        else:
            self._slots.move_to_end(item_id)
            if self.discount < 1.0:
                decay = self.discount ** (self._slates - self._updated_at[slot])
                self._shows[slot] *= decay
                self._rewards[slot] *= decay
        self._updated_at[slot] = self._slates
        return slot
