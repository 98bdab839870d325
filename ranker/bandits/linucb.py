"""LinUCB: a linear reward model on interest x item features, with an upper-confidence bonus.

Score = similarity + feedback_weight * (lift + x^T theta + exploration * sqrt(x^T A^-1 x)),
lift being the item's reward lift by its statistics (0 when the policy keeps none; the model
learns the reward beyond it, see `linear_model`): the bonus is in reward units, like the
learned part, as for UCB1. The model generalises across items, so a new item close to ones that
paid off for similar interests starts ahead; with nothing learned yet (theta = 0) and no bonus
the ranking is by similarity. Without a usable interest (see `linear_model`) the ranking is by
relevance plus lift (`ContextualFeedback`). Deterministic, so propensities are 1. Features and
update costs: see `linear_model`.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import Slate, slate_from_scores
from ranker.bandits.item_stats import ItemStatsStore
from ranker.bandits.linear_model import CandidateFeatures, ProjectedRidge, RidgePerDimension
from ranker.bandits.linear_policy import LinearPolicy


class LinUCB(LinearPolicy):
    name = "linucb"

    def __init__(
        self,
        exploration: float = 0.05,
        feedback_weight: float = 1.0,
        feature_dim: int = 16,
        ridge: float = 1.0,
        seed: int = 0,
        name: str = "",
        stats: ItemStatsStore | None = None,
        models: RidgePerDimension | None = None,
    ) -> None:
        super().__init__(feedback_weight, feature_dim, ridge, seed, name, stats, models)
        self.exploration = exploration
        self.every_row = bool(exploration)

    def explore(
        self, model: ProjectedRidge, candidates: CandidateFeatures, exploit: np.ndarray, top_k: int
    ) -> Slate:
        scores = exploit
        if self.exploration:
            bonus = np.sqrt(np.maximum(model.variance(candidates.all()), 0.0))
            scores = exploit + self.feedback_weight * self.exploration * bonus
        return slate_from_scores(scores, exploit, top_k, self.name)
