"""Linear Thompson sampling: LinUCB's model, exploring by sampling theta from its posterior.

theta~ = theta + scale * L z with L L^T = A^-1 and z standard normal, and score = similarity +
feedback_weight * x^T theta~. Features and update costs: see `linear_model`.

Propensities are estimates (`propensities_against_rival`): x^T theta~ is exactly
Normal(x^T theta, scale^2 x^T A^-1 x), and the estimate is the chance that the item's sampled
score beats the strongest candidate the slate left out (ignoring that the two are correlated).
"""

from __future__ import annotations

import threading

import numpy as np

from ranker.bandits.base import (
    RankContext,
    ShownItem,
    Slate,
    explored_mask,
    propensities_against_rival,
    top_k_order,
)
from ranker.bandits.linear_model import ProjectedRidge


class LinearThompson:
    name = "linear_thompson"

    def __init__(
        self,
        scale: float = 0.05,
        feedback_weight: float = 1.0,
        feature_dim: int = 32,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.scale = scale
        self.feedback_weight = feedback_weight
        self.model = ProjectedRidge(feature_dim, ridge, seed)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            features = self.model.features(context.vectors, context.interest)
            similarity = context.relevance
            exploit = similarity + self.feedback_weight * self.model.mean(features)
            noise = np.linalg.cholesky(self.model.a_inv) @ self._rng.standard_normal(
                len(self.model.theta)
            )
            scores = exploit + self.feedback_weight * self.scale * (
                features @ noise.astype(np.float32)
            )
            indices = top_k_order(scores, top_k)
            spread = self.feedback_weight * self.scale
            propensities = propensities_against_rival(
                exploit,
                indices,
                lambda rows: spread * np.sqrt(np.maximum(self.model.variance(features[rows]), 0)),
            )
            self.model.record_shown(features[indices])
            return Slate(
                indices=indices,
                scores=scores[indices],
                propensities=propensities,
                explored=explored_mask(indices, exploit, top_k),
                policy=self.name,
            )

    def update(self, shown: ShownItem, reward: float) -> None:
        with self._lock:
            if shown.interest is None:
                return
            features = self.model.features(shown.vector[None, :], shown.interest)[0]
            self.model.record_reward(features, reward)
