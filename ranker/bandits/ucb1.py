"""UCB1 on top of content similarity: optimism in proportion to how little an item was shown.

The score is similarity plus feedback_weight times the item's reward lift over the prior plus
the UCB1 bonus c * sqrt(ln(1 + N) / (1 + n)): the bonus is in reward units like the lift, so
the feedback weight scales both and the balance of learning and exploring stays put. Unshown
items all get the same, largest bonus, so among themselves they keep their content order, and
as a group they are tried before being judged: cold items are ranked by similarity and never
starved. Deterministic, so propensities are 1.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import (
    RankContext,
    Slate,
    content_and_feedback,
    slate_from_scores,
)
from ranker.bandits.count_policy import CountPolicy
from ranker.bandits.item_stats import ItemStatsStore


class UCB1(CountPolicy):
    name = "ucb1"

    def __init__(
        self, stats: ItemStatsStore, exploration: float, feedback_weight: float, name: str = ""
    ) -> None:
        super().__init__(stats, feedback_weight, name)
        self.exploration = exploration

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            exploit, shows = content_and_feedback(context, self.stats, self.feedback_weight)
            bonus = self.exploration * np.sqrt(np.log1p(self.stats.total_shows) / (1.0 + shows))
            bonus *= self.feedback_weight
            slate = slate_from_scores(exploit + bonus, exploit, top_k, self.name)
            self.record_shows(context, slate.indices)
            return slate
