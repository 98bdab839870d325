"""LinUCB: a linear reward model on interest x item features, with an upper-confidence bonus.

Score = similarity + feedback_weight * (x^T theta + exploration * sqrt(x^T A^-1 x)): the bonus
is in reward units, like the learned part, as for UCB1. The model
generalises across items, so a new item close to ones that paid off for similar interests
starts ahead; with nothing learned yet (theta = 0) and no bonus the ranking is by similarity.
Without a usable interest (see `linear_model`) the ranking is by relevance, plus the reward
lift of item statistics when the policy keeps them (`ContextualFeedback`). Deterministic,
so propensities are 1. Features and update costs: see `linear_model`.
"""

from __future__ import annotations

import threading

import numpy as np

from ranker.bandits.base import (
    RankContext,
    ShownItem,
    Slate,
    check_update,
    slate_from_scores,
)
from ranker.bandits.item_stats import ItemStatsStore
from ranker.bandits.linear_model import ContextualFeedback, RidgePerDimension


class LinUCB:
    name = "linucb"

    def __init__(
        self,
        exploration: float = 0.05,
        feedback_weight: float = 1.0,
        feature_dim: int = 32,
        ridge: float = 1.0,
        seed: int = 0,
        name: str = "",
        stats: ItemStatsStore | None = None,
        models: RidgePerDimension | None = None,
    ) -> None:
        """`name`: "" keeps the class's name; the registry names variants. `stats`: item
        statistics that rank contexts without a usable interest; `models`: a model to share."""
        self.name = name or self.name
        self.exploration = exploration
        self.feedback_weight = feedback_weight
        self.models = models or RidgePerDimension(feature_dim, ridge, seed)
        self.learned = ContextualFeedback(self.models, stats)
        self._lock = threading.Lock()

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            model = self.models.for_context(context.vectors, context.interest)
            if model is None:
                return self.learned.fallback_slate(context, top_k, self.feedback_weight, self.name)
            features = model.features(context.vectors, context.interest)
            exploit = context.relevance + self.feedback_weight * model.mean(features)
            scores = exploit
            if self.exploration:
                bonus = np.sqrt(np.maximum(model.variance(features), 0.0))
                scores = exploit + self.feedback_weight * self.exploration * bonus
            slate = slate_from_scores(scores, exploit, top_k, self.name)
            model.record_shown(features[slate.indices])
            self.learned.record_shows(context, slate.indices)
            return slate

    def update(self, shown: ShownItem, reward: float) -> None:
        check_update(shown, reward, (self.name,))
        with self._lock:
            self.learned.record_reward(shown, reward)
