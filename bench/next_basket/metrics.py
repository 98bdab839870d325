"""Top-k metrics of ranked candidate lists, one per row, ties broken by random keys.

Recall@k divides the hits by the number of targets, capped at k (`recall_capped`), so a basket
larger than k can still reach 1; the uncapped variant divides by all targets. The capped one is
what reproduces the reference figures of the issue (see bench/evaluate.py).
"""

from __future__ import annotations

import numpy as np

from .protocol import CandidateGrid

K = 10


def ranked_relevance(scores: np.ndarray, grid: CandidateGrid) -> np.ndarray:
    """The grid's relevance per row, best score first; equal scores follow the random keys."""
    scores = np.where(grid.valid, scores, -np.inf)
    order = np.lexsort((grid.tie_breaks, -scores), axis=-1)
    return np.take_along_axis(grid.relevant, order, axis=-1)


def hit_rate(ranked: np.ndarray, k: int = K) -> np.ndarray:
    return ranked[:, :k].any(axis=1).astype(np.float64)


def recall_capped(ranked: np.ndarray, k: int = K) -> np.ndarray:
    return ranked[:, :k].sum(axis=1) / np.minimum(ranked.sum(axis=1), k)


def recall(ranked: np.ndarray, k: int = K) -> np.ndarray:
    return ranked[:, :k].sum(axis=1) / ranked.sum(axis=1)


def ndcg(ranked: np.ndarray, k: int = K) -> np.ndarray:
    """Binary-gain DCG@k over the ideal DCG of min(targets, k) hits at the top."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = ranked[:, :k] @ discounts[: ranked[:, :k].shape[1]]
    ideal = np.cumsum(discounts)[np.minimum(ranked.sum(axis=1), k) - 1]
    return dcg / ideal


METRICS = {
    "recall@10": recall_capped,
    "ndcg@10": ndcg,
    "hr@10": hit_rate,
    "recall@10_uncapped": recall,
}


def per_customer(scores: np.ndarray, grid: CandidateGrid) -> dict[str, np.ndarray]:
    """Each metric for each row (one row per customer), for paired comparisons."""
    ranked = ranked_relevance(scores, grid)
    return {name: metric(ranked) for name, metric in METRICS.items()}


def mean_metrics(scores: np.ndarray, grid: CandidateGrid) -> dict[str, float]:
    return {name: float(values.mean()) for name, values in per_customer(scores, grid).items()}


class Tables:
    """The reports of the issue over one set of episodes: all targets, and the targets new to
    each customer, once with the customer's other old items still among the candidates (a model
    that pushes every old purchase up pays for it) and once without any of them (how well the
    new items alone are ordered)."""

    ALL = "all items"
    NEW = "new items"
    NEW_ONLY = "new items, no old candidates"

    def __init__(self, grid: CandidateGrid) -> None:
        self.grids = {
            self.ALL: (grid, np.arange(len(grid.items))),
            self.NEW: grid.new_items_only(),
            self.NEW_ONLY: grid.new_items_only(drop_old_candidates=True),
        }

    @property
    def grid(self) -> CandidateGrid:
        return self.grids[self.ALL][0]

    def rows(self, table: str) -> int:
        return len(self.grids[table][1])

    def per_customer(self, scores: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        return {
            table: per_customer(scores[rows], grid) for table, (grid, rows) in self.grids.items()
        }

    def metrics(self, scores: np.ndarray) -> dict[str, dict[str, float]]:
        return {
            table: {name: float(values.mean()) for name, values in metrics.items()}
            for table, metrics in self.per_customer(scores).items()
        }
