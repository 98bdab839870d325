"""Choosing the blend's weights and half-lives on a validation split, never on the test.

The validation episodes predict each customer's second-to-last invoice from the history before
it, so the last invoice stays unseen until the final evaluation. Component scores are computed
once per half-life and cached as grids, so each trial of the search is only a weighted sum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .blend import COMPONENTS, BlendInputs, BlendParams
from .metrics import Tables
from .protocol import Episode

WEIGHT_STEPS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)
HALF_LIFE_STEPS = {
    "repeat_half_life_hours": (720.0, 2160.0, 8760.0),
    "short_half_life_hours": (24.0, 72.0, 168.0),
    "long_half_life_hours": (720.0, 2160.0, 8760.0),
}
ROUNDS = 2

Objective = Callable[[dict[str, dict[str, float]]], float]


def all_items_objective(metrics: dict[str, dict[str, float]]) -> float:
    return (metrics[Tables.ALL]["recall@10"] + metrics[Tables.ALL]["ndcg@10"]) / 2


def new_items_objective(metrics: dict[str, dict[str, float]]) -> float:
    return (metrics[Tables.NEW]["recall@10"] + metrics[Tables.NEW]["ndcg@10"]) / 2


class ComponentGrids:
    def __init__(self, episodes: list[Episode], tables: Tables, inputs: BlendInputs) -> None:
        self.episodes = episodes
        self.tables = tables
        self.inputs = inputs
        self._grids: dict[tuple, np.ndarray] = {}

    def _grid(self, name: str, params: BlendParams) -> np.ndarray:
        component, half_lives = COMPONENTS[name]
        key = (name, *(getattr(params, h) for h in half_lives))
        if key not in self._grids:
            grid = np.zeros(self.tables.grid.items.shape)
            for row, episode in enumerate(self.episodes):
                grid[row, : len(episode.candidates)] = component(
                    episode.history, episode.candidates, params, self.inputs
                )
            self._grids[key] = grid
        return self._grids[key]

    def metrics(self, params: BlendParams) -> dict[str, dict[str, float]]:
        scores = np.zeros(self.tables.grid.items.shape)
        for name in COMPONENTS:
            weight = getattr(params, name)
            if weight:
                scores += weight * self._grid(name, params)
        return self.tables.metrics(scores)


def tune(grids: ComponentGrids, objective: Objective, start: BlendParams) -> BlendParams:
    """Coordinate search: each weight and half-life in turn over its steps, best kept."""
    steps = {name: WEIGHT_STEPS for name in COMPONENTS} | HALF_LIFE_STEPS
    best, best_value = start, objective(grids.metrics(start))
    for _ in range(ROUNDS):
        for field, values in steps.items():
            for value in values:
                trial = replace(best, **{field: value})
                trial_value = objective(grids.metrics(trial))
                if trial_value > best_value + 1e-6:
                    best, best_value = trial, trial_value
    return best
