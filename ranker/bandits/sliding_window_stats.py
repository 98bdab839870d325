"""Per-item shows and rewards over only the most recent slates, for interests that drift.

Unlike a discount, a window forgets completely: what happened `window` slates ago no longer
counts at all, so an item that stopped earning loses its lead after one window. Memory is
bounded by the window (slates times their size), not by the catalogue.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

import numpy as np


class SlidingWindowItemStats:
    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least one slate, got {window}")
        self.window = window
        self._slates = 0
        self._total_shows = 0
        # (slate number, item ids) per recorded slate, and (slate number, item id, reward).
        self._shown: deque[tuple[int, tuple[str, ...]]] = deque()
        self._rewarded: deque[tuple[int, str, float]] = deque()
        self._shows: Counter[str] = Counter()
        self._rewards: Counter[str] = Counter()

    @property
    def total_shows(self) -> float:
        return float(self._total_shows)

    def counts(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        n = len(item_ids)
        shows = np.fromiter((self._shows.get(i, 0) for i in item_ids), dtype=np.float64, count=n)
        rewards = np.fromiter(
            (self._rewards.get(i, 0.0) for i in item_ids), dtype=np.float64, count=n
        )
        # A reward can outlive the show it was for near the window's edge.
        return shows, np.minimum(rewards, shows)

    def record_shows(self, item_ids: Sequence[str]) -> None:
        self._slates += 1
        self._shown.append((self._slates, tuple(item_ids)))
        self._shows.update(item_ids)
        self._total_shows += len(item_ids)
        self._forget_old()

    def record_reward(self, item_id: str, reward: float) -> None:
        self._rewarded.append((self._slates, item_id, reward))
        self._rewards[item_id] += reward

    def _forget_old(self) -> None:
        oldest_kept = self._slates - self.window + 1
        while self._shown and self._shown[0][0] < oldest_kept:
            _, item_ids = self._shown.popleft()
            self._total_shows -= len(item_ids)
            self._shows.subtract(item_ids)
            for item_id in item_ids:
                if self._shows[item_id] <= 0:
                    del self._shows[item_id]
        while self._rewarded and self._rewarded[0][0] < oldest_kept:
            _, item_id, reward = self._rewarded.popleft()
            self._rewards[item_id] -= reward
            if self._rewards[item_id] <= 1e-12:
                del self._rewards[item_id]
