"""Fitting the two-stream model's logistic weights on earlier invoices, never on the evaluated ones.

Each stream is fitted on its own candidates: the repeat stream on the candidates the customer
took before, the discovery stream on the others, so each probability is calibrated where it is
used and the merge by probability is fair between them. The content weights (one per embedding
dimension) are ridged harder than the few parts: they must learn kinds of items, not single ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ranker.interest import EvolvingInterestParams
from ranker.interest.streams import DISCOVERY_PARTS, REPEAT_PARTS, StreamWeights

from .tuning import PartGrids

NEWTON_STEPS = 30
CONVERGED = 1e-7  # the largest weight change at which Newton's method stops
RIDGE = 1e-3  # keeps the Hessian invertible when a part is constant on the split
CONTENT_RIDGE = 3.0  # chosen on the validation split (3 and 10 tried)


def logistic_weights(
    features: np.ndarray, labels: np.ndarray, ridge: np.ndarray | float = RIDGE
) -> np.ndarray:
    """Bias then slopes maximising the ridged log-likelihood, by Newton's method; `ridge` is one
    penalty for all weights or one per weight."""
    x = np.column_stack([np.ones(len(features)), features])
    penalty = np.broadcast_to(np.asarray(ridge, dtype=np.float64), x.shape[1])
    weights = np.zeros(x.shape[1])
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-x @ weights))
        gradient = x.T @ (p - labels) + penalty * weights
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < CONVERGED:
            break
    return weights


def calibrate(
    splits: Sequence[PartGrids],
    params: EvolvingInterestParams,
    vectors: np.ndarray,
    discovery_shift: float = 0.0,
) -> StreamWeights:
    """Both streams fitted on the candidates of every split together."""
    columns: dict[str, list[np.ndarray]] = {"repeat": [], "discovery": []}
    labels: dict[str, list[np.ndarray]] = {"repeat": [], "discovery": []}
    for grids in splits:
        parts = grids.parts(params)
        grid = grids.tables.grid
        known = parts["known"] > 0.0
        for stream, rows, names in (
            ("repeat", grid.valid & known, REPEAT_PARTS),
            ("discovery", grid.valid & ~known, DISCOVERY_PARTS),
        ):
            columns[stream].append(
                np.column_stack([*(parts[name][rows] for name in names), vectors[grid.items[rows]]])
            )
            labels[stream].append(grid.relevant[rows])

    def fitted(stream: str, names: tuple[str, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        features = np.vstack(columns[stream]).astype(np.float64)
        ridge = np.r_[np.full(1 + len(names), RIDGE), np.full(vectors.shape[1], CONTENT_RIDGE)]
        weights = logistic_weights(
            features, np.concatenate(labels[stream]).astype(np.float64), ridge
        )
        return tuple(weights[: 1 + len(names)].tolist()), tuple(weights[1 + len(names) :].tolist())

    repeat, repeat_content = fitted("repeat", REPEAT_PARTS)
    discovery, discovery_content = fitted("discovery", DISCOVERY_PARTS)
    return StreamWeights(repeat, discovery, repeat_content, discovery_content, discovery_shift)
