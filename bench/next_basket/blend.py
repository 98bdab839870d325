"""Our candidate ranker: repeat behaviour plus an evolving text interest, in one linear score.

About half of a basket are items bought before, which only the customer's own purchase counts
find; the rest are new, which only content (text) and other customers (co-purchases) can find.
The interest is kept at two time scales, and their difference is the direction the customer is
drifting in, so items along a recent shift can rank above items of an old, faded taste (on
Online Retail II the tuning gives drift and co-purchases little or no weight).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .baselines import CoPurchaseCounts, ItemKNNScorer, recency_weights, sum_per_candidate
from .protocol import History


@dataclass(frozen=True)
class BlendParams:
    """Half-lives and component weights; the defaults are only where the tuning starts."""

    repeat_half_life_hours: float = 2160.0
    short_half_life_hours: float = 168.0
    long_half_life_hours: float = 720.0
    # Weights of the components; the repeat component's scale sets the unit.
    repeat: float = 1.0
    short_interest: float = 0.1
    long_interest: float = 0.1
    drift: float = 0.0
    co_purchase: float = 0.0


@dataclass(frozen=True)
class BlendInputs:
    """What the components read besides the history: item embeddings and co-purchases."""

    vectors: np.ndarray
    counts: CoPurchaseCounts


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def interest(history: History, vectors: np.ndarray, half_life_hours: float) -> np.ndarray:
    """The ranker's RecencyWeightedInterest for a purchases-only history, vectorised."""
    weights = recency_weights(history.times, half_life_hours)
    return _unit(weights @ vectors[history.items].astype(np.float64))


def repeat_score(
    history: History, candidates: np.ndarray, params: BlendParams, inputs: BlendInputs
) -> np.ndarray:
    """Recency-weighted purchase counts over the customer's largest one: 1 for their staple."""
    weights = recency_weights(history.times, params.repeat_half_life_hours)
    scores = sum_per_candidate(history.items, weights, candidates)
    return scores / sum_per_candidate(history.items, weights, np.unique(history.items)).max()


def short_interest_score(
    history: History, candidates: np.ndarray, params: BlendParams, inputs: BlendInputs
) -> np.ndarray:
    direction = interest(history, inputs.vectors, params.short_half_life_hours)
    return inputs.vectors[candidates].astype(np.float64) @ direction


def long_interest_score(
    history: History, candidates: np.ndarray, params: BlendParams, inputs: BlendInputs
) -> np.ndarray:
    direction = interest(history, inputs.vectors, params.long_half_life_hours)
    return inputs.vectors[candidates].astype(np.float64) @ direction


def drift_score(
    history: History, candidates: np.ndarray, params: BlendParams, inputs: BlendInputs
) -> np.ndarray:
    """Cosine to the direction the short-term interest moved away from the long-term one."""
    direction = _unit(
        interest(history, inputs.vectors, params.short_half_life_hours)
        - interest(history, inputs.vectors, params.long_half_life_hours)
    )
    return inputs.vectors[candidates].astype(np.float64) @ direction


def co_purchase_score(
    history: History, candidates: np.ndarray, params: BlendParams, inputs: BlendInputs
) -> np.ndarray:
    """Item-kNN averaged over the customer's items, so a long history does not outweigh the
    other components."""
    scores = ItemKNNScorer(inputs.counts).score(history, candidates)
    return scores / len(np.unique(history.items))


Component = Callable[[History, np.ndarray, BlendParams, BlendInputs], np.ndarray]

# Each weight of BlendParams, its component, and the half-lives that component reads.
COMPONENTS: dict[str, tuple[Component, tuple[str, ...]]] = {
    "repeat": (repeat_score, ("repeat_half_life_hours",)),
    "short_interest": (short_interest_score, ("short_half_life_hours",)),
    "long_interest": (long_interest_score, ("long_half_life_hours",)),
    "drift": (drift_score, ("short_half_life_hours", "long_half_life_hours")),
    "co_purchase": (co_purchase_score, ()),
}


class RepeatInterestBlend:
    def __init__(self, name: str, params: BlendParams, inputs: BlendInputs) -> None:
        self.name = name
        self.params = params
        self.inputs = inputs

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        total = np.zeros(len(candidates))
        for name, (component, _) in COMPONENTS.items():
            weight = getattr(self.params, name)
            if weight:
                total += weight * component(history, candidates, self.params, self.inputs)
        return total
