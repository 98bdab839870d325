"""Repeat behaviour: how strongly, how often and how recently the user took each item, by id.

About half of a retail basket are items bought before, and only the user's own history finds
them. Events at the same time form one basket (an invoice, a session), so an item counts once
per basket however many lines it has. The user's habits (how often they take an item again, how
many and how large their baskets are) say how much of the next basket repeats are likely to fill:
the two-stream model weighs old against new items with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from .base import HistoryColumns


@dataclass(frozen=True)
class RepeatScores:
    """Per distinct history item, each in [0, 1]; items the user never touched score 0."""

    index: Mapping[str, int]
    # A row per score, a column per item of `index` and a last column of zeros: the scores of
    # a candidate that is no history item.
    # known: the strongest event type seen for the item (a purchase 1, a view 0.2).
    # frequency: the recency-weighted share of the user's baskets that hold the item.
    # recent: strength in the latest basket with the item, halved every `recent_baskets`
    # baskets since.
    scores: np.ndarray
    # The user's habits, one number each (see HABITS).
    habits: Mapping[str, float]

    def of(self, item_ids: Sequence[str], new: bool) -> dict[str, np.ndarray]:
        """Each score per candidate, 0 for candidates that are not history items; `new`: none
        is, as most requests have it (the caller knows)."""
        if new:
            known, frequency, recent = np.zeros((3, len(item_ids)))
        else:
            # -1, the column of zeros, for a candidate that is no history item.
            rows = np.fromiter(map(self.index.get, item_ids, repeat(-1)), np.int64, len(item_ids))
            known, frequency, recent = self.scores[:, rows]
        return {"known": known, "frequency": frequency, "recent": recent}

    def none_taken(self, item_ids: Sequence[str]) -> bool:
        """Whether no candidate is a history item: in C, once for the scores by id and the
        similarity (whose items are among these)."""
        return self.index.keys().isdisjoint(item_ids)


# Share of basket items after the first basket that the user took before (with one repeat and
# one new item as prior), and the logs of the number of baskets, their mean size and the number
# of distinct items.
HABITS = ("repeat_share", "baskets", "basket_size", "variety")


def habits(presence: np.ndarray) -> dict[str, float]:
    """From the items x baskets presence matrix, baskets oldest first."""
    taken = presence > 0
    items, baskets = taken.shape
    pairs = np.count_nonzero(taken)
    after_first = pairs - np.count_nonzero(taken[:, 0])
    # Each item's first basket is not a repeat; every later one is.
    repeats = pairs - items
    return {
        "repeat_share": (repeats + 1.0) / (after_first + 2.0),
        "baskets": math.log(baskets),
        "basket_size": math.log(pairs / baskets),
        "variety": math.log(items),
    }


NO_HABITS = {"repeat_share": 0.5, "baskets": 0.0, "basket_size": 0.0, "variety": 0.0}


def repeat_scores(
    history: HistoryColumns,
    event_weights: Mapping[int, float],
    decays: np.ndarray,
    recent_baskets: float,
) -> RepeatScores:
    """`history`: the events' `history_columns`, typed by `event_weights`; `decays`: each
    event's `decay` at the repeat half-life, which its basket shares (the baskets' own times)."""
    if not len(history.times):
        return RepeatScores({}, np.zeros((3, 1)), NO_HABITS)
    strength = history.weights / max(event_weights.values())
    # Sorted as Python floats, in C: np.unique takes half a dozen array operations.
    basket_times = np.array(sorted(set(history.times.tolist())))
    basket = basket_times.searchsorted(history.times)
    items = len(history.index)
    presence = np.zeros((items, len(basket_times)))
    scores = np.zeros((3, items + 1))
    known, frequency, recent = scores[:, :items]
    if history.each_event_its_own_item:
        # One event per item and basket: the item's strongest and latest are its event's.
        presence[history.rows, basket] = strength
        known[:] = strength
        latest, latest_strength = basket, strength
    else:
        np.maximum.at(presence, (history.rows, basket), strength)
        # Baskets are oldest first: an item's latest is the highest of its events' baskets.
        latest = np.zeros(items, dtype=np.int64)
        np.maximum.at(latest, history.rows, basket)
        np.maximum.reduce(presence, axis=1, out=known)
        latest_strength = presence[np.arange(items), latest]
    weights = np.empty(len(basket_times))
    weights[basket] = decays
    np.matmul(presence, weights, out=frequency)
    frequency /= np.add.reduce(weights)
    since = np.exp2((latest - (len(basket_times) - 1)) / recent_baskets)
    np.multiply(latest_strength, since, out=recent)
    return RepeatScores(history.index, scores, habits(presence))
