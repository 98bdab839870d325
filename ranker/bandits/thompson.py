"""Thompson sampling with a Beta-Bernoulli posterior per item, on top of content similarity.

Each item's click rate has the posterior Beta(PRIOR_REWARDS + rewards, PRIOR_SHOWS -
PRIOR_REWARDS + shows - rewards), whose mean is the smoothed rate the other policies use; the
score is similarity plus a sampled rate's lift over the prior. Items without feedback share one
draw from the prior: they then keep their content order among themselves (cold items rank by
similarity) while as a group they are as likely as the prior says to beat known items.

Propensities are estimates, not exact (`propensities_against_rival`): each posterior is taken
as a normal of the same mean and variance, and the estimate is the chance that the item's
sampled score beats the strongest candidate the slate left out.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import (
    PRIOR_RATE,
    PRIOR_REWARDS,
    PRIOR_SHOWS,
    RankContext,
    Slate,
    sampled_slate,
)
from ranker.bandits.count_policy import CountPolicy
from ranker.bandits.item_stats import ItemStatsStore


class BetaThompson(CountPolicy):
    name = "thompson"

    def __init__(
        self, stats: ItemStatsStore, feedback_weight: float = 1.0, seed: int = 0, name: str = ""
    ) -> None:
        super().__init__(stats, feedback_weight, name)
        self._rng = np.random.default_rng(seed)

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            shows, rewards = self.stats.counts(context.item_ids)
            alpha = PRIOR_REWARDS + rewards
            beta = np.maximum(PRIOR_SHOWS - PRIOR_REWARDS + shows - rewards, 1e-3)
            sampled = self._rng.beta(alpha, beta)
            cold = shows == 0
            sampled[cold] = self._rng.beta(PRIOR_REWARDS, PRIOR_SHOWS - PRIOR_REWARDS)
            similarity = context.relevance
            scores = similarity + self.feedback_weight * (sampled - PRIOR_RATE)
            mean = alpha / (alpha + beta)
            exploit = similarity + self.feedback_weight * (mean - PRIOR_RATE)
            total = alpha + beta
            score_std = self.feedback_weight * np.sqrt(alpha * beta / (total**2 * (total + 1.0)))
            slate = sampled_slate(
                scores, exploit, top_k, lambda rows: score_std.take(rows).tolist(), self.name
            )
            self.record_shows(context, slate.indices)
            return slate
