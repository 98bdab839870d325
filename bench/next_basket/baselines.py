"""The reference rankers the issue asks for, each a `Scorer` over item indices.

Scorers that learn from other customers (popularity, co-occurrence) see only invoices before the
episode's cutoff, so no future basket leaks into a score.
"""

from __future__ import annotations

import numpy as np

from ranker.interest import HistoryEvent, InterestModel, UserProfile
from ranker.v1 import ranker_pb2

from .data import Transactions
from .protocol import History

HOUR_S = 3600.0


def recency_weights(times: np.ndarray, half_life_hours: float) -> np.ndarray:
    """exp2(-age / half-life), ages from the newest event as in ranker/interest.py."""
    return np.exp2(-(times.max() - times) / (half_life_hours * HOUR_S))


def sum_per_candidate(items: np.ndarray, values: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Sum of `values` over the history rows of each candidate item; 0 for unseen items."""
    distinct, inverse = np.unique(items, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    positions = np.minimum(np.searchsorted(distinct, candidates), len(distinct) - 1)
    return np.where(distinct[positions] == candidates, sums[positions], 0.0)


class RandomScorer:
    name = "random"

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        return np.zeros(len(candidates))


class BuyAgainScorer:
    """The personal top-frequency baseline: recency-weighted counts of the customer's purchases."""

    def __init__(self, half_life_hours: float, name: str = "buy_again") -> None:
        self.half_life_hours = half_life_hours
        self.name = name

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        weights = recency_weights(history.times, self.half_life_hours)
        return sum_per_candidate(history.items, weights, candidates)


class CoPurchaseCounts:
    """How many invoices before a time hold each item and each pair of items.

    Advances through the invoices in time order, so scoring episodes sorted by cutoff reads each
    invoice once; asking for an earlier time starts over.
    """

    def __init__(self, transactions: Transactions) -> None:
        self._items = transactions.items
        self._times = transactions.times
        invoices = transactions.invoices
        self._starts = np.flatnonzero(np.r_[True, invoices[1:] != invoices[:-1]])
        self._stops = np.r_[self._starts[1:], len(invoices)]
        self._n_items = transactions.n_items
        self._reset()

    def _reset(self) -> None:
        self.pairs = np.zeros((self._n_items, self._n_items), dtype=np.int32)
        self._next = 0
        self._time = -np.inf

    def advance_to(self, cutoff: float) -> CoPurchaseCounts:
        if cutoff < self._time:
            self._reset()
        self._time = cutoff
        while self._next < len(self._starts) and self._times[self._starts[self._next]] < cutoff:
            items = self._items[self._starts[self._next] : self._stops[self._next]]
            self.pairs[np.ix_(items, items)] += 1
            self._next += 1
        return self

    def item_counts(self, items: np.ndarray) -> np.ndarray:
        return self.pairs[items, items].astype(np.float64)


class PopularityScorer:
    name = "popularity"

    def __init__(self, counts: CoPurchaseCounts) -> None:
        self.counts = counts

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        return self.counts.advance_to(history.cutoff).item_counts(candidates)


class ItemKNNScorer:
    """Sum over the customer's distinct items of the cosine of co-purchase count vectors."""

    name = "item_knn"

    def __init__(self, counts: CoPurchaseCounts) -> None:
        self.counts = counts

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        counts = self.counts.advance_to(history.cutoff)
        bought = np.unique(history.items)
        together = counts.pairs[np.ix_(bought, candidates)].astype(np.float64)
        norms = np.sqrt(np.outer(counts.item_counts(bought), counts.item_counts(candidates)))
        return np.divide(together, norms, out=np.zeros_like(together), where=norms > 0).sum(0)


class InterestModelScorer:
    """A ranker `InterestModel`'s relevance, the history as purchases: the code the ranker serves,
    so the figures are the served model's."""

    def __init__(
        self,
        name: str,
        model: InterestModel,
        vectors: np.ndarray,
        transactions: Transactions,
        encoder: str = "",
    ) -> None:
        """`encoder`: the fingerprint of the version that made `vectors`."""
        self.name = name
        self.model = model
        self.vectors = vectors
        self.encoder = encoder
        self.item_ids = transactions.item_ids
        self.item_texts = transactions.item_texts

    def profile(self, history: History) -> UserProfile:
        """The profile the ranker would build: purchases newest first, as the service sorts."""
        newest_first = history.items[::-1]
        events = [
            HistoryEvent(
                self.item_ids[item], self.item_texts[item], ranker_pb2.EVENT_TYPE_PURCHASE, time
            )
            for item, time in zip(newest_first.tolist(), history.times[::-1].tolist(), strict=True)
        ]
        return self.model.profile(events, self.vectors[newest_first], self.encoder)

    def candidate_ids(self, candidates: np.ndarray) -> list[str]:
        return [self.item_ids[item] for item in candidates.tolist()]

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        return self.profile(history).relevance(
            self.candidate_ids(candidates), self.vectors[candidates]
        )
