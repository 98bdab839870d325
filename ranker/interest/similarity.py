"""Similarity of a candidate to the individual items of the history, not to their mean.

A user with two tastes has a mean interest between them that resembles neither; the soft
maximum over single history items keeps both (on Online Retail II, among the items new to each
customer, it lifts Recall@10 from 0.23 to 0.32 over the cosine to the mean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import HistoryColumns


@dataclass(frozen=True)
class HistoryItems:
    """The distinct history items, their unit embeddings and summed recency x type weights."""

    index: Mapping[str, int]
    vectors: np.ndarray
    weights: np.ndarray

    def soft_max_similarity(
        self, item_ids: Sequence[str], vectors: np.ndarray, temperature: float, new: bool
    ) -> np.ndarray:
        """temperature * log of the weighted mean of exp(cosine / temperature) over the history
        items other than the candidate itself (its own repeat is scored by id, not by text).
        `new`: no candidate is a history item, as most requests have it (the caller knows).

        Low temperatures approach the best match; 0 where nothing else is in the history, and
        for candidates without content (a zero cosine everywhere)."""
        total = np.add.reduce(self.weights)
        if not total > 0.0 or vectors.ndim != 2 or vectors.shape[1] != self.vectors.shape[1]:
            return np.zeros(len(item_ids))
        # Items x candidates: the maximum per candidate and the shift by it then run along
        # whole rows, where candidates x items broadcast a number per row through a buffer.
        logits = self.vectors.astype(vectors.dtype, copy=False) @ vectors.T
        logits = logits.astype(np.float32, copy=False)
        logits /= temperature
        kept = None
        totals: float | np.ndarray = total
        if not new:
            rows = [row for row, i in enumerate(item_ids) if i in self.index]
            columns = [self.index[item_ids[row]] for row in rows]
            logits[columns, rows] = -np.inf
            totals = np.full(len(item_ids), total)
            totals[rows] -= self.weights[columns]
            kept = totals > 1e-12 * total
            logits = logits[:, kept]
            totals = totals[kept]
        top = np.maximum.reduce(logits, axis=0)
        logits -= top
        mean = self.weights @ np.exp(logits, out=logits)
        mean /= totals
        similarity = temperature * (np.log(mean, out=mean) + top)
        if kept is None:
            return similarity
        scores = np.zeros(len(item_ids))
        scores[kept] = similarity
        return scores


def history_items(
    history: HistoryColumns, vectors: np.ndarray, weights: np.ndarray, limit: int
) -> HistoryItems:
    """Merges the events of each item (`history`, the events' `history_columns`: the first
    event's vector, the sum of the weights) and keeps the `limit` heaviest items: the
    candidates x items product is most of a profile's cost."""
    own = history.each_event_its_own_item
    summed = weights if own else np.bincount(history.rows, weights, len(history.index))
    if len(summed) <= limit:
        # All kept, in their order.
        firsts = vectors if own else vectors[history.first]
        return HistoryItems(history.index, firsts, summed)
    kept = np.sort(np.argsort(-summed, kind="stable")[:limit])
    names = list(history.index)
    return HistoryItems(
        {names[item]: position for position, item in enumerate(kept)},
        vectors[history.first[kept]],
        summed[kept],
    )
