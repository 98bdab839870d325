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


def mean_metrics(scores: np.ndarray, grid: CandidateGrid) -> dict[str, float]:
    """Each metric averaged over the grid's rows (one row per customer)."""
    ranked = ranked_relevance(scores, grid)
    return {name: float(metric(ranked).mean()) for name, metric in METRICS.items()}


class Tables:
    """The two reports of the issue over one set of episodes: all targets, and new items only."""

    ALL = "all items"
    NEW = "new items"

    def __init__(self, grid: CandidateGrid) -> None:
        self.grid = grid
        self.new_grid, self.new_rows = grid.new_items_only()

    def metrics(self, scores: np.ndarray) -> dict[str, dict[str, float]]:
        return {
            self.ALL: mean_metrics(scores, self.grid),
            self.NEW: mean_metrics(scores[self.new_rows], self.new_grid),
        }
