"""One recency-weighted mean of the history's embeddings: the plain text interest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import EVENT_WEIGHTS, CosineProfile, HistoryEvent, decay, type_weights, unit


class RecencyWeightedInterest:
    """Weighs stronger signals (a purchase over a view) and newer events more, so the interest
    follows the user as their behaviour shifts."""

    def __init__(
        self, half_life_hours: float, event_weights: Mapping[int, float] = EVENT_WEIGHTS
    ) -> None:
        self.half_life_hours = half_life_hours
        self.event_weights = event_weights

    def weights(self, events: Sequence[HistoryEvent]) -> np.ndarray:
        times = np.array([e.time_s for e in events], dtype=np.float64)
        return type_weights(events, self.event_weights) * decay(times, self.half_life_hours)

    def profile(
        self, events: Sequence[HistoryEvent], vectors: np.ndarray, encoder: str = ""
    ) -> CosineProfile:
        """`encoder`: unused, a cosine holds in any embedding space."""
        return CosineProfile(self.interest(events, vectors))

    def interest(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> np.ndarray | None:
        """A unit vector, or None when the history says nothing."""
        if not events:
            return None
        summed = unit(self.weights(events) @ vectors.astype(np.float64))
        return None if summed is None else summed.astype(np.float32)
