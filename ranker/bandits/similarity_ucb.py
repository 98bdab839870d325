"""Content similarity plus what feedback taught, with a UCB bonus for little-shown items.

Items start from the content score alone (a prior click rate that neither helps nor hurts), so
cold items are ranked by similarity and never starved; feedback then moves an item by how its
observed reward rate differs from the prior.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import RankContext, Slate, similarities, slate_from_scores
from ranker.bandits.item_stats import ItemStatsStore

PRIOR_REWARDS = 1.0
PRIOR_SHOWS = 10.0


class SimilarityUCB:
    name = "similarity_ucb"

    def __init__(self, stats: ItemStatsStore, exploration: float, feedback_weight: float) -> None:
        self.stats = stats
        self.exploration = exploration
        self.feedback_weight = feedback_weight

    def rank(self, context: RankContext, top_k: int) -> Slate:
        shows, rewards = self.stats.counts(context.item_ids)
        rate = (rewards + PRIOR_REWARDS) / (shows + PRIOR_SHOWS)
        exploit = similarities(context) + self.feedback_weight * (
            rate - PRIOR_REWARDS / PRIOR_SHOWS
        )
        bonus = self.exploration * np.sqrt(np.log1p(self.stats.total_shows) / (1.0 + shows))
        slate = slate_from_scores(exploit + bonus, exploit, top_k)
        self.stats.record_shows([context.item_ids[i] for i in slate.indices])
        return slate

    def update(self, item_id: str, reward: float) -> None:
        self.stats.record_reward(item_id, reward)
