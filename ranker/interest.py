"""The user's interest, built from their history, and how relevant each candidate is to it.

An `InterestModel` turns the history into a `UserProfile`; the profile scores candidates
(`relevance`, what every policy starts from) and gives contextual policies a unit vector. The
default weighs stronger signals (a purchase over a view) and newer events more, so the profile
follows the user as their behaviour shifts. Implement `InterestModel` to plug in another one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

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


@dataclass(frozen=True)
class HistoryEvent:
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
    def profile(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> UserProfile:
        """`vectors` holds the embeddings of `events`, row by row."""
        ...


@dataclass(frozen=True)
class CosineProfile:
    """Relevance is the cosine of a candidate to the interest vector; 0 without an interest."""

    vector: np.ndarray | None

    def relevance(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        if self.vector is None or vectors.shape[1] != len(self.vector):
            return np.zeros(len(item_ids), dtype=np.float64)
        # In the embeddings' own precision: casting 1,000 x 384 floats up costs more than the
        # whole product.
        return (vectors @ self.vector.astype(vectors.dtype, copy=False)).astype(np.float64)


class RecencyWeightedInterest:
    def __init__(
        self, half_life_hours: float, event_weights: Mapping[int, float] = EVENT_WEIGHTS
    ) -> None:
        self.half_life_s = half_life_hours * 3600.0
        self.event_weights = event_weights

    def weights(self, events: Sequence[HistoryEvent]) -> np.ndarray:
        times = np.array([e.time_s for e in events], dtype=np.float64)
        # Ages count from the newest event: the reference cancels out after normalising.
        decay = np.exp2(-(times.max() - times) / self.half_life_s)
        kinds = np.array([self.event_weights[e.type] for e in events], dtype=np.float64)
        return kinds * decay

    def profile(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> CosineProfile:
        return CosineProfile(self.interest(events, vectors))

    def interest(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> np.ndarray | None:
        """A unit vector, or None when the history says nothing."""
        if not events:
            return None
        summed = self.weights(events) @ vectors.astype(np.float64)
        norm = np.linalg.norm(summed)
        if norm == 0.0:
            return None
        return (summed / norm).astype(np.float32)
