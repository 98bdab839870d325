"""What every interest model shares: history events, their type weights, and the profile API.

An `InterestModel` turns the history into a `UserProfile`; the profile scores candidates
(`relevance`, what every policy starts from) and gives contextual policies a unit vector.
Implement `InterestModel` to plug in another model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from ranker.v1 import ranker_pb2

EVENT_WEIGHTS: Mapping[int, float] = {
    ranker_pb2.EVENT_TYPE_UNSPECIFIED: 1.0,
    ranker_pb2.EVENT_TYPE_VIEW: 1.0,
    ranker_pb2.EVENT_TYPE_CLICK: 2.0,
    ranker_pb2.EVENT_TYPE_FAVORITE: 3.0,
    ranker_pb2.EVENT_TYPE_ADD_TO_CART: 4.0,
    ranker_pb2.EVENT_TYPE_PURCHASE: 5.0,
}

HOUR_S = 3600.0


class HistoryEvent(NamedTuple):
    """A tuple, not a dataclass: a request builds dozens, and a tuple is built in half the time."""

    item_id: str
    text: str
    type: int
    time_s: float


class UserProfile(Protocol):
    # The user's interest as a unit vector in the embedding space, for contextual features;
    # None when the history says nothing.
    vector: np.ndarray | None

    def relevance(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """One float64 score per candidate; candidates without content have zero vectors."""
        ...


class InterestModel(Protocol):
    def profile(
        self, events: Sequence[HistoryEvent], vectors: np.ndarray, encoder: str = ""
    ) -> UserProfile:
        """`vectors` holds the embeddings of `events`, row by row; `encoder` is the fingerprint
        of the weights that made them (ranker/encoder_identity.py), "" when unknown: a model
        with priors learned on one encoder's embeddings applies them to that encoder's only."""
        ...


class HistoryColumns(NamedTuple):
    """A history's events as arrays, read from the events once: the recency weights, the repeat
    scores and the similarity to history items all work on them."""

    # Item id -> its row, items in order of first appearance.
    index: dict[str, int]
    # Each event's item row.
    rows: np.ndarray
    # Each item's first event.
    first: np.ndarray
    # Each event's time in seconds, and its type's weight.
    times: np.ndarray
    weights: np.ndarray

    @property
    def each_event_its_own_item(self) -> bool:
        """No item twice: each event's row and first event are its position, and what is
        merged per item is the events' own."""
        return len(self.index) == len(self.times)


def history_columns(
    events: Sequence[HistoryEvent], event_weights: Mapping[int, float]
) -> HistoryColumns:
    if not events:
        empty = np.zeros(0, dtype=np.int64)
        return HistoryColumns({}, empty, empty, np.zeros(0), np.zeros(0))
    # Column by column in C (zip, dict, map): a history has dozens of events.
    item_ids, _, types, times = zip(*events, strict=True)
    count = len(item_ids)
    index = dict(zip(item_ids, range(count), strict=True))
    if len(index) == count:
        # Each event its own item: its row and its first event are its position.
        rows = first = np.arange(count)
    else:
        index = dict(zip(dict.fromkeys(item_ids), range(count), strict=False))
        # Written from the last event back, each item keeps the position of its first.
        firsts = dict(zip(reversed(item_ids), range(count - 1, -1, -1), strict=True))
        rows = np.fromiter(map(index.__getitem__, item_ids), np.int64, count)
        first = np.fromiter(map(firsts.__getitem__, index), np.int64, len(index))
    return HistoryColumns(
        index,
        rows,
        first,
        np.array(times, dtype=np.float64),
        np.fromiter(map(event_weights.__getitem__, types), np.float64, count),
    )


def decay(times: np.ndarray, half_life_hours: float | np.ndarray) -> np.ndarray:
    """exp2(-age / half-life); ages count from the newest event, since a Rank request carries
    no clock of its own and the reference cancels out of every normalised score. Half-lives in
    a column give a row per half-life."""
    # ufunc.reduce here and in the rest of the model: ndarray.max and .sum take a detour
    # through Python.
    return np.exp2((times - np.maximum.reduce(times)) / (half_life_hours * HOUR_S))


def unit(vector: np.ndarray) -> np.ndarray | None:
    """`vector` scaled to length 1, or None when it has no direction."""
    norm = math.sqrt(vector @ vector)  # np.linalg.norm's own sum, without its checks
    return None if norm == 0.0 else vector / norm


@dataclass(frozen=True)
class CosineProfile:
    """Relevance is the cosine of a candidate to the interest vector; 0 without an interest."""

    vector: np.ndarray | None

    def relevance(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        return cosine(self.vector, vectors)


def cosine(interest: np.ndarray | None, vectors: np.ndarray) -> np.ndarray:
    """Each row's cosine to a unit interest (rows are unit or zero); 0 without an interest."""
    if interest is None or vectors.ndim != 2 or vectors.shape[1] != len(interest):
        return np.zeros(len(vectors), dtype=np.float64)
    # In the embeddings' own precision: casting 1,000 x 384 floats up costs more than the
    # whole product.
    return (vectors @ interest.astype(vectors.dtype, copy=False)).astype(np.float64)
