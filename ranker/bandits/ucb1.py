"""UCB1 on top of content similarity: optimism in proportion to how little an item was shown.

The score is similarity plus feedback_weight times the item's reward lift over the prior plus
the UCB1 bonus c * sqrt(ln(1 + N) / (1 + n)): the bonus is in reward units like the lift, so
the feedback weight scales both and the balance of learning and exploring stays put. Unshown
items all get the same, largest bonus, so among themselves they keep their content order, and
as a group they are tried before being judged: cold items are ranked by similarity and never
starved. Deterministic, so propensities are 1.
"""

from __future__ import annotations

import threading

import numpy as np

from ranker.bandits.base import (
    RankContext,
    ShownItem,
    Slate,
    check_update,
    content_and_feedback,
    slate_from_scores,
)
from ranker.bandits.item_stats import ItemStatsStore


class UCB1:
    name = "ucb1"

    def __init__(
        self, stats: ItemStatsStore, exploration: float, feedback_weight: float, name: str = ""
    ) -> None:
        """`name`: "" keeps the class's name; the registry names variants."""
        self.name = name or self.name
        self.stats = stats
        self.exploration = exploration
        self.feedback_weight = feedback_weight
        self._lock = threading.Lock()

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            exploit, shows = content_and_feedback(context, self.stats, self.feedback_weight)
            bonus = self.exploration * np.sqrt(np.log1p(self.stats.total_shows) / (1.0 + shows))
            bonus *= self.feedback_weight
            slate = slate_from_scores(exploit + bonus, exploit, top_k, self.name)
            self.stats.record_shows([context.item_ids[i] for i in slate.indices])
            return slate

    def update(self, shown: ShownItem, reward: float) -> None:
        check_update(shown, reward, (self.name,))
        with self._lock:
            self.stats.record_reward(shown.item_id, reward)
