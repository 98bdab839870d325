"""One recency-weighted mean of the history's embeddings: the plain text interest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import (
    EVENT_WEIGHTS,
    CosineProfile,
    HistoryEvent,
    decay,
    history_columns,
    unit,
)


def weighted_interests(weights: np.ndarray, vectors: np.ndarray) -> list[np.ndarray | None]:
    """Per row of `weights`, the weighted sum of `vectors` as a float32 unit vector, or None
    when it has no direction."""
    # Summed in the embeddings' precision, which the interest is kept in: widening the history
    # first copies all of it, the largest temporary of a profile.
    narrow = weights.astype(vectors.dtype, copy=False)
    interests = []
    # A row at a time: a vector-matrix product reads `vectors` as they are, where a matrix
    # product first copies them into its own layout.
    for row in narrow:
        direction = unit((row @ vectors).astype(np.float64))
        interests.append(None if direction is None else direction.astype(np.float32))
    return interests


class RecencyWeightedInterest:
    """Weighs stronger signals (a purchase over a view) and newer events more, so the interest
    follows the user as their behaviour shifts."""

    def __init__(
        self, half_life_hours: float, event_weights: Mapping[int, float] = EVENT_WEIGHTS
    ) -> None:
        self.half_life_hours = half_life_hours
        self.event_weights = event_weights

    def weights(self, events: Sequence[HistoryEvent]) -> np.ndarray:
        history = history_columns(events, self.event_weights)
        return history.weights * decay(history.times, self.half_life_hours)

    def profile(
        self, events: Sequence[HistoryEvent], vectors: np.ndarray, encoder: str = ""
    ) -> CosineProfile:
        """`encoder`: unused, a cosine holds in any embedding space."""
        return CosineProfile(self.interest(events, vectors))

    def interest(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> np.ndarray | None:
        """A unit vector, or None when the history says nothing."""
        if not events:
            return None
        return weighted_interests(self.weights(events)[None, :], vectors)[0]
