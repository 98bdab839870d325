"""The user's interest as one unit vector over the embeddings of their history.

Stronger signals (a purchase over a view) and newer events weigh more, so the vector follows the
user as their behaviour shifts. Implement `InterestModel` to plug in another representation.
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


class InterestModel(Protocol):
    def interest(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> np.ndarray | None:
        """A unit vector, or None when the history says nothing."""
        ...


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

    def interest(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> np.ndarray | None:
        if not events:
            return None
        summed = self.weights(events) @ vectors.astype(np.float64)
        norm = np.linalg.norm(summed)
        if norm == 0.0:
            return None
        return (summed / norm).astype(np.float32)
