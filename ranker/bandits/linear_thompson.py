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

import math

import numpy as np

from ranker.bandits.base import Slate, sampled_slate
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
        # theta and the noise scored apart: one product with both as columns is an sgemm, whose
        # packing of the embeddings costs more (callgrind: +64k instructions a request) than a
        # second sgemv over them.
        noise = np.linalg.cholesky(model.a_inv) @ self._rng.standard_normal(len(model.theta))
        spread = self.feedback_weight * self.scale
        scores = exploit + spread * candidates.along(noise)

        def score_std(rows: np.ndarray) -> list[float]:
            # max and sqrt in Python: for a slate of ten numpy's calls cost more.
            variances = model.variance(candidates.rows(rows)).tolist()
            return [spread * math.sqrt(max(variance, 0.0)) for variance in variances]

        return sampled_slate(scores, exploit, top_k, score_std, self.name)
