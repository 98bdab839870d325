"""Repeats and discoveries as two streams, merged by calibrated probability: a pluggable
alternative to the default's single linear scale.

Items the user took before (the repeat stream: their repeat frequency, recency and similarity to
the rest of the history) and new items (the discovery stream: their similarity to single history
items and to the interest vector) each get a logistic probability of being taken next, fitted
per stream on a validation split (bench/evaluate.py refits it). Sorting by a calibrated
probability maximises the expected hits at every k, so no top_k is needed. `discovery_shift`
adds log-odds to new items: it trades accuracy on all items for accuracy on the new ones.

Relevance is that probability, in [0, 1]: the same unit as the reward rate whose lift (about
-0.1 to 0.9, times feedback_weight) the policies add, so one observed reward moves an item as
far as a comparable change in its chance of being taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import EVENT_WEIGHTS, HistoryEvent
from .evolving import EvolvingInterest, EvolvingInterestParams, EvolvingProfile

REPEAT_PARTS = ("frequency", "recent", "similarity")
DISCOVERY_PARTS = ("similarity", "interest")


@dataclass(frozen=True)
class StreamWeights:
    """Logistic weights, the bias first, then one per part in REPEAT_PARTS / DISCOVERY_PARTS.

    Defaults: fitted on each customer's second-to-last invoice of Online Retail II."""

    repeat: tuple[float, ...] = (-1.29, 1.65, 0.99, 0.83)
    discovery: tuple[float, ...] = (-3.73, 3.68, 1.02)
    discovery_shift: float = 0.0


def log_odds(
    parts: Mapping[str, np.ndarray], names: Sequence[str], weights: Sequence[float]
) -> np.ndarray:
    bias, *slopes = weights
    return bias + sum(w * parts[name] for w, name in zip(slopes, names, strict=True))


def stream_probability(parts: Mapping[str, np.ndarray], weights: StreamWeights) -> np.ndarray:
    """Each candidate's probability from its own stream: repeat if the user took it, else
    discovery (plus the shift)."""
    repeat = log_odds(parts, REPEAT_PARTS, weights.repeat)
    discovery = log_odds(parts, DISCOVERY_PARTS, weights.discovery) + weights.discovery_shift
    return 1.0 / (1.0 + np.exp(-np.where(parts["known"] > 0.0, repeat, discovery)))


@dataclass(frozen=True)
class TwoStreamProfile:
    vector: np.ndarray | None
    evolving: EvolvingProfile
    weights: StreamWeights

    def relevance(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        return stream_probability(self.evolving.parts(item_ids, vectors), self.weights)


class TwoStreamInterest:
    """The evolving model's profile (vector, drift, short- and long-term interest unchanged)
    with relevance from the two calibrated streams."""

    def __init__(
        self,
        weights: StreamWeights | None = None,
        params: EvolvingInterestParams | None = None,
        event_weights: Mapping[int, float] = EVENT_WEIGHTS,
    ) -> None:
        self.weights = weights or StreamWeights()
        self.evolving = EvolvingInterest(params, event_weights)

    @property
    def params(self) -> EvolvingInterestParams:
        return self.evolving.params

    def profile(self, events: Sequence[HistoryEvent], vectors: np.ndarray) -> TwoStreamProfile:
        evolving = self.evolving.profile(events, vectors)
        return TwoStreamProfile(evolving.vector, evolving, self.weights)
