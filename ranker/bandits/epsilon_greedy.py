"""Epsilon-greedy per slot, with epsilon decaying as 1 / (1 + decay * slates ranked).

Each slot, top first, holds the best remaining item by exploitation score, except with
probability epsilon a uniformly random remaining one. Exploration per slot rather than per
slate keeps the top of most slates greedy while every candidate keeps a chance of being shown;
the decaying epsilon spends less on exploration as evidence accumulates. The exploitation
score is similarity plus reward lift, so cold items are ordered by content.

Propensities are exact: the probability of the item in its slot given the items above it,
(1 - epsilon) * [it is the greedy choice] + epsilon / remaining candidates.
"""

from __future__ import annotations

import numpy as np

from ranker.bandits.base import (
    RankContext,
    Slate,
    content_and_feedback,
    explored_mask,
)
from ranker.bandits.count_policy import CountPolicy
from ranker.bandits.item_stats import ItemStatsStore


class EpsilonGreedy(CountPolicy):
    name = "epsilon_greedy"

    def __init__(
        self,
        stats: ItemStatsStore,
        epsilon: float = 0.1,
        decay: float = 0.0,
        feedback_weight: float = 1.0,
        seed: int = 0,
        name: str = "",
    ) -> None:
        super().__init__(stats, feedback_weight, name)
        self.epsilon = epsilon
        self.decay = decay
        self._rng = np.random.default_rng(seed)
        self._slates_ranked = 0

    def current_epsilon(self) -> float:
        return self.epsilon / (1.0 + self.decay * self._slates_ranked)

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            exploit, _ = content_and_feedback(context, self.stats, self.feedback_weight)
            epsilon = self.current_epsilon()
            indices, propensities = self._choose(exploit, min(top_k, len(exploit)), epsilon)
            self._slates_ranked += 1
            self.record_shows(context, indices)
            return Slate(
                indices=indices,
                scores=exploit[indices],
                propensities=propensities,
                explored=explored_mask(indices, exploit, top_k),
                policy=self.name,
            )

    def _choose(
        self, exploit: np.ndarray, top_k: int, epsilon: float
    ) -> tuple[np.ndarray, np.ndarray]:
        greedy = np.argsort(-exploit, kind="stable")
        explores = self._rng.random(top_k) < epsilon
        chosen: list[int] = []
        propensities = np.empty(top_k)
        next_greedy = 0
        for slot in range(top_k):
            taken = set(chosen)
            while int(greedy[next_greedy]) in taken:
                next_greedy += 1
            best = int(greedy[next_greedy])
            remaining = len(exploit) - slot
            pick = self._random_untaken(sorted(taken), remaining) if explores[slot] else best
            chosen.append(pick)
            propensities[slot] = (1.0 - epsilon) * (pick == best) + epsilon / remaining
        return np.array(chosen, dtype=np.int64), propensities

    def _random_untaken(self, taken_sorted: list[int], remaining: int) -> int:
        """A uniform pick among the candidates not yet in the slate, without scanning them all."""
        index = int(self._rng.integers(remaining))
        for taken in taken_sorted:
            if taken > index:
                break
            index += 1
        return index
