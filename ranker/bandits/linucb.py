"""LinUCB: a linear reward model on interest x item features, with an upper-confidence bonus.

Score = similarity + feedback_weight * x^T theta + exploration * sqrt(x^T A^-1 x). The model
generalises across items, so a new item close to ones that paid off for similar interests
starts ahead; with nothing learned yet (theta = 0) and no bonus the ranking is by similarity.
Deterministic, so propensities are 1. Features and update costs: see `linear_model`.
"""

from __future__ import annotations

import threading

import numpy as np

from ranker.bandits.base import RankContext, ShownItem, Slate, slate_from_scores
from ranker.bandits.linear_model import ProjectedRidge


class LinUCB:
    name = "linucb"

    def __init__(
        self,
        exploration: float = 0.05,
        feedback_weight: float = 1.0,
        feature_dim: int = 32,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.exploration = exploration
        self.feedback_weight = feedback_weight
        self.model = ProjectedRidge(feature_dim, ridge, seed)
        self._lock = threading.Lock()

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            features = self.model.features(context.vectors, context.interest)
            exploit = context.relevance + self.feedback_weight * self.model.mean(features)
            scores = exploit
            if self.exploration:
                bonus = np.sqrt(np.maximum(self.model.variance(features), 0.0))
                scores = exploit + self.exploration * bonus
            slate = slate_from_scores(scores, exploit, top_k, self.name)
            self.model.record_shown(features[slate.indices])
            return slate

    def update(self, shown: ShownItem, reward: float) -> None:
        with self._lock:
            if shown.interest is None:
                return
            features = self.model.features(shown.vector[None, :], shown.interest)[0]
            self.model.record_reward(features, reward)
