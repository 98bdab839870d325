"""Softmax (Boltzmann) exploration: the slate is a Plackett-Luce draw over exploitation scores.

Slot by slot, each remaining item is chosen with probability proportional to
exp(score / temperature), drawn all at once with the Gumbel-top-k trick (top_k of score /
temperature + Gumbel noise). Scores are similarity plus reward lift, so the temperature is in
cosine units: near 0 is greedy by content and feedback, larger spreads traffic over items
whose scores are close. Cold items are ordered by content in expectation.

Propensities are exact under this model: the Plackett-Luce probability of the item in its slot
given the items above it.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import (
    MIN_PROPENSITY,
    RankContext,
    Slate,
    content_and_feedback,
    explored_mask,
    top_k_order,
)
from ranker.bandits.count_policy import CountPolicy
from ranker.bandits.item_stats import ItemStatsStore


def plackett_luce_propensities(
    scores: np.ndarray, indices: np.ndarray, temperature: float
) -> np.ndarray:
    """Probability of each chosen item in its slot given the items above it."""
    weights = np.exp((scores - scores.max()) / temperature)
    chosen = weights[indices]
    left = np.maximum(weights.sum() - np.concatenate(([0.0], np.cumsum(chosen)[:-1])), chosen)
    # Where every remaining weight underflows the temperature is so low that the draw is greedy.
    placed = np.divide(chosen, left, out=np.ones_like(chosen), where=left > 0)
    return np.clip(placed, MIN_PROPENSITY, 1.0)


class Softmax(CountPolicy):
    name = "softmax"

    def __init__(
        self,
        stats: ItemStatsStore,
        temperature: float = 0.05,
        feedback_weight: float = 1.0,
        seed: int = 0,
        name: str = "",
    ) -> None:
        if temperature <= 0.0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        super().__init__(stats, feedback_weight, name)
        self.temperature = temperature
        self._rng = np.random.default_rng(seed)

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            exploit, _ = content_and_feedback(context, self.stats, self.feedback_weight)
            perturbed = exploit / self.temperature + self._rng.gumbel(size=len(exploit))
            indices = top_k_order(perturbed, top_k)
            self.record_shows(context, indices)
            return Slate(
                indices=indices,
                scores=exploit[indices],
                propensities=plackett_luce_propensities(exploit, indices, self.temperature),
                explored=explored_mask(indices, exploit, top_k),
                policy=self.name,
            )
