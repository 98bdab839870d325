"""What the count-based policies share: per-item statistics that every slate's shows and every
reward go into, under one lock. A policy adds how it scores and explores."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ranker.bandits.base import RankContext, ShownItem, check_update
from ranker.bandits.item_stats import ItemStatsStore


class CountPolicy:
    name = ""

    def __init__(self, stats: ItemStatsStore, feedback_weight: float, name: str) -> None:
        """`name`: "" keeps the class's name; the registry names variants."""
        self.name = name or self.name
        self.stats = stats
        self.feedback_weight = feedback_weight
        self._lock = threading.Lock()

    def record_shows(self, context: RankContext, indices: Iterable[int]) -> None:
        self.stats.record_shows([context.item_ids[i] for i in indices])

    def update(self, shown: ShownItem, reward: float) -> None:
        check_update(shown, reward, (self.name,))
        with self._lock:
            self.stats.record_reward(shown.item_id, reward)
