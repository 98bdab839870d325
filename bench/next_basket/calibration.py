"""Fitting the two-stream model's logistic weights on a validation split, never on the test.

Each stream is fitted on its own candidates: the repeat stream on the candidates the customer
took before, the discovery stream on the others, so each probability is calibrated where it is
used and the merge by probability is fair between them.
"""

from __future__ import annotations

import numpy as np

from ranker.interest import EvolvingInterestParams
from ranker.interest.streams import DISCOVERY_PARTS, REPEAT_PARTS, StreamWeights

from .tuning import PartGrids

NEWTON_STEPS = 30
RIDGE = 1e-3  # keeps the Hessian invertible when a part is constant on the split


def logistic_weights(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Bias then slopes maximising the (lightly ridged) log-likelihood, by Newton's method."""
    x = np.column_stack([np.ones(len(features)), features])
    weights = np.zeros(x.shape[1])
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-x @ weights))
        gradient = x.T @ (p - labels) + RIDGE * weights
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + RIDGE * np.eye(len(weights))
        weights -= np.linalg.solve(hessian, gradient)
    return weights


def calibrate(
    grids: PartGrids, params: EvolvingInterestParams, discovery_shift: float = 0.0
) -> StreamWeights:
    parts = grids.parts(params)
    grid = grids.tables.grid
    old = grid.valid & (parts["known"] > 0.0)
    new = grid.valid & ~(parts["known"] > 0.0)

    def fitted(rows: np.ndarray, names: tuple[str, ...]) -> tuple[float, ...]:
        features = np.column_stack([parts[name][rows] for name in names])
        return tuple(logistic_weights(features, grid.relevant[rows].astype(np.float64)).tolist())

    return StreamWeights(fitted(old, REPEAT_PARTS), fitted(new, DISCOVERY_PARTS), discovery_shift)
