"""The interface every ranking policy implements, and what it is given and gives back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RankContext:
    user_id: str
    item_ids: Sequence[str]
    # Candidate embeddings, one unit row per item.
    vectors: np.ndarray
    # The user's interest as a unit vector; None for a user without usable history.
    interest: np.ndarray | None


@dataclass(frozen=True)
class Slate:
    # Positions into the context's candidates, best first.
    indices: np.ndarray
    scores: np.ndarray
    # Probability with which the policy put each item in its slot.
    propensities: np.ndarray
    # True where exploration, not exploitation, placed the item.
    explored: np.ndarray


class Policy(Protocol):
    name: str

    def rank(self, context: RankContext, top_k: int) -> Slate:
        """Chooses the slate and records that its items were shown."""
        ...

    def update(self, item_id: str, reward: float) -> None:
        """Learns from a reward in [0, 1] for an item shown in an earlier slate."""
        ...


def similarities(context: RankContext) -> np.ndarray:
    """Cosine similarity of each candidate to the interest; zeros when there is none."""
    if context.interest is None:
        return np.zeros(len(context.item_ids), dtype=np.float64)
    return context.vectors.astype(np.float64) @ context.interest.astype(np.float64)


def top_k_order(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the top_k scores, best first; equal scores keep the candidates' order."""
    return np.argsort(-scores, kind="stable")[:top_k]


def slate_from_scores(scores: np.ndarray, exploit: np.ndarray, top_k: int) -> Slate:
    """A deterministic slate by score; items that exploitation alone would not pick are explored."""
    order = top_k_order(scores, top_k)
    greedy = top_k_order(exploit, top_k)
    return Slate(
        indices=order,
        scores=scores[order],
        propensities=np.ones(len(order)),
        explored=~np.isin(order, greedy),
    )
