"""Per-item shows and rewards, the state that count-based policies learn from.

Bounded: the least recently touched items are forgotten first, so memory stays flat however
large the catalogue that passes through the ranker. Counts live in a numpy array indexed by a
slot per item, so reading 1,000 candidates' counts is one gather, not 1,000 small lists; an
item's shows and rewards sit side by side, so the gather touches one cache line per item.

With `discount` below 1 the statistics forget: every recorded slate multiplies all earlier
shows and rewards by `discount`, which is how policies follow interests that drift. Counts are
stored in units that make this free: a count recorded now is stored divided by discount **
(slates since a rescale) and read back multiplied by it, so a slate touches no count but its
own items'. discount=1 keeps plain cumulative counts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import repeat
from typing import Protocol

import numpy as np

# Stored counts grow as 1 / discount ** slates: they are rescaled long before they overflow.
RESCALE_BELOW = 1e-100


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
        # Per slot its shows and its rewards, and views of each column.
        self._counts = np.zeros((capacity + 1, 2))
        self._shows = self._counts[:, 0]
        self._rewards = self._counts[:, 1]
        # What a stored count is multiplied by to read it now: discount ** the slates since the
        # stored counts were last rescaled.
        self._now = 1.0
        self._slates_since_rescale = 0
        self._total_shows = 0.0

    @property
    def total_shows(self) -> float:
        return self._total_shows

    def counts(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        slots = np.fromiter(
            map(self._slots.get, item_ids, repeat(-1)), dtype=np.int64, count=len(item_ids)
        )
        # take, not indexing: for rows it costs a quarter as much.
        counts = self._counts.take(slots, axis=0)
        if self.discount != 1.0:
            counts *= self._now
        return counts[:, 0], counts[:, 1]

    def record_shows(self, item_ids: Sequence[str]) -> None:
        self._forget_one_slate()
        self._total_shows = self._total_shows * self.discount + len(item_ids)
        shown = 1.0 / self._now
        for item_id in item_ids:
            self._shows[self._slot(item_id)] += shown

    def record_reward(self, item_id: str, reward: float) -> None:
        self._rewards[self._slot(item_id)] += reward / self._now

    def _forget_one_slate(self) -> None:
        if self.discount == 1.0:
            return
        self._slates_since_rescale += 1
        self._now = self.discount**self._slates_since_rescale
        if self._now < RESCALE_BELOW:
            self._counts *= self._now
            self._now = 1.0
            self._slates_since_rescale = 0

    def _slot(self, item_id: str) -> int:
        """The item's slot, taking the oldest slot, emptied, if the item is new."""
        slot = self._slots.get(item_id)
        if slot is None:
            if len(self._slots) < self.capacity:
                slot = len(self._slots)
            else:
                _, slot = self._slots.popitem(last=False)
            self._slots[item_id] = slot
            self._counts[slot] = 0.0
        else:
            self._slots.move_to_end(item_id)
        return slot
