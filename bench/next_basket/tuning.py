"""Choosing the evolving interest model's parameters (whose profile the served two-stream model
reads too) on a validation split, never on the test.

The validation episodes predict each customer's second-to-last invoice from the history before
it, so the last invoice stays unseen until the final evaluation. The profile's parts are scored
once per setting of the parameters that shape them (half-lives, temperature) and cached as
grids, so each trial of a weight is only a weighted sum.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np

from ranker.interest import EvolvingInterest, EvolvingInterestParams
from ranker.interest.evolving import PARTS, combine

from .baselines import InterestModelScorer
from .data import Transactions
from .metrics import Tables
from .protocol import Episode

WEIGHT_STEPS = {
    "repeat_boost": (0.0, 0.3, 1.0, 3.0),
    "recent_weight": (0.0, 0.1, 0.3, 1.0, 3.0),
    "similarity_weight": (0.0, 0.01, 0.03, 0.1, 0.3, 1.0),
    "interest_weight": (0.0, 0.01, 0.03, 0.1, 0.3),
}
SHAPE_STEPS = {
    "repeat_half_life_hours": (720.0, 2160.0, 8760.0),
    "recent_baskets": (2.0, 4.0, 8.0),
    "similarity_half_life_hours": (168.0, 720.0, 2160.0),
    "similarity_temperature": (0.02, 0.05, 0.1),
    "short_half_life_hours": (24.0, 72.0, 168.0),
    "long_half_life_hours": (720.0, 2160.0, 8760.0),
}
ROUNDS = 2


def objective(metrics: dict[str, dict[str, float]]) -> float:
    """The issue's target: Recall@10 and NDCG@10 on all items, equally."""
    return (metrics[Tables.ALL]["recall@10"] + metrics[Tables.ALL]["ndcg@10"]) / 2


class PartGrids:
    def __init__(
        self,
        episodes: list[Episode],
        tables: Tables,
        vectors: np.ndarray,
        transactions: Transactions,
    ) -> None:
        self.episodes = episodes
        self.tables = tables
        self.vectors = vectors
        self.transactions = transactions
        self._grids: dict[tuple, dict[str, np.ndarray]] = {}

    def parts(self, params: EvolvingInterestParams) -> dict[str, np.ndarray]:
        key = tuple(value for name, value in asdict(params).items() if name not in WEIGHT_STEPS)
        if key not in self._grids:
            scorer = InterestModelScorer(
                "tuning", EvolvingInterest(params), self.vectors, self.transactions
            )
            grids = {name: np.zeros(self.tables.grid.items.shape) for name in PARTS}
            for row, episode in enumerate(self.episodes):
                parts = scorer.profile(episode.history).parts(
                    scorer.candidate_ids(episode.candidates), self.vectors[episode.candidates]
                )
                for name, values in parts.items():
                    grids[name][row, : len(values)] = values
            self._grids[key] = grids
        return self._grids[key]

    def metrics(self, params: EvolvingInterestParams) -> dict[str, dict[str, float]]:
        return self.tables.metrics(combine(self.parts(params), params))


def tune(grids: PartGrids, start: EvolvingInterestParams) -> EvolvingInterestParams:
    """Coordinate search: each weight, then each shape parameter, over its steps, best kept."""
    steps = WEIGHT_STEPS | SHAPE_STEPS
    best, best_value = start, objective(grids.metrics(start))
    for _ in range(ROUNDS):
        for field, values in steps.items():
            for value in values:
                trial = replace(best, **{field: value})
                value_of_trial = objective(grids.metrics(trial))
                if value_of_trial > best_value + 1e-6:
                    best, best_value = trial, value_of_trial
    return best


def changed(params: EvolvingInterestParams) -> dict[str, float]:
    """The parameters that differ from the defaults: what to carry into the settings."""
    defaults = asdict(EvolvingInterestParams())
    return {name: value for name, value in asdict(params).items() if value != defaults[name]}
