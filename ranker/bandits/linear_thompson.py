"""Linear Thompson sampling: LinUCB's model, exploring by sampling theta from its posterior.

theta~ = theta + scale * L z with L L^T = A^-1 and z standard normal, and score = similarity +
feedback_weight * (lift + x^T theta~), lift being the item's reward lift by its statistics as
for LinUCB. Features and update costs: see `linear_model`.

Propensities are estimates (`propensities_against_rival`): x^T theta~ is exactly
Normal(x^T theta, scale^2 x^T A^-1 x), and the estimate is the chance that the item's sampled
score beats the strongest candidate the slate left out (ignoring that the two are correlated).
Without a usable interest (see `linear_model`) the slate is deterministic, propensities 1: by
relevance plus lift.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import (
    Slate,
    explored_mask,
    propensities_against_rival,
    top_k_order,
)
from ranker.bandits.item_stats import ItemStatsStore
from ranker.bandits.linear_model import CandidateFeatures, ProjectedRidge, RidgePerDimension
from ranker.bandits.linear_policy import LinearPolicy


class LinearThompson(LinearPolicy):
    name = "linear_thompson"

    def __init__(
        self,
        scale: float = 0.05,
        feedback_weight: float = 1.0,
        feature_dim: int = 16,
        ridge: float = 1.0,
        seed: int = 0,
        name: str = "",
        stats: ItemStatsStore | None = None,
        models: RidgePerDimension | None = None,
    ) -> None:
        super().__init__(feedback_weight, feature_dim, ridge, seed, name, stats, models)
        self.scale = scale
        self._rng = np.random.default_rng(seed)

    def explore(
        self, model: ProjectedRidge, candidates: CandidateFeatures, exploit: np.ndarray, top_k: int
    ) -> Slate:
        noise = np.linalg.cholesky(model.a_inv) @ self._rng.standard_normal(len(model.theta))
        scores = exploit + self.feedback_weight * self.scale * candidates.along(noise)
        indices = top_k_order(scores, top_k)
        spread = self.feedback_weight * self.scale
        return Slate(
            indices=indices,
            scores=scores[indices],
            propensities=propensities_against_rival(
                exploit,
                indices,
                lambda rows: spread * np.sqrt(np.maximum(model.variance(candidates.rows(rows)), 0)),
            ),
            explored=explored_mask(indices, exploit, top_k),
            policy=self.name,
        )
