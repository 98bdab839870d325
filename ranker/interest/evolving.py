"""Repeat behaviour and an evolving text interest on one hand-set scale; its profile (parts,
vector, drift) is what the served two-stream model (streams.py) builds on.

A candidate the user took before is scored by id: a boost for being known, the recency-weighted
share of baskets holding it, and how recently it was taken. Every candidate, known or not, also
scores its soft maximum similarity to the other history items. All parts are in [0, 1] (the
similarity in [-1, 1]), so one weighted sum ranks repeats and new items together: at the
defaults the boost puts every item the user took above every new one, the similarity orders the
new ones and breaks near-ties among repeats (Online Retail II, where half of a basket are
repeats, found no better balance); a lower boost lets close new items pass rarely taken old ones.
The text interest is kept at two time scales; their distance is the drift, and the profile's
vector, which contextual policies read, leans to the short-term interest as far as the user
drifted. The short-term interest's cosine joins the relevance with `interest_weight`: it is what
lets the ranking follow a shift within hours (newer clicks outrank older purchases among new
items); neutral on Online Retail II, whose invoices are weeks apart.

The scale, for the reward lift the policies add (about -0.1 to 0.9 times feedback_weight): at
the defaults a purchased item scores about 1 to 2.3 and a new one -0.03 to 0.03, so feedback
reorders items within each band but at feedback_weight 1 never lifts a new item above a
purchased one (above an item only viewed, yes). That fixed band is why this model misses the
new-items target of bench/evaluate.py; the two-stream model puts both on one learned probability
scale instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import EVENT_WEIGHTS, HistoryEvent, cosine, decay, history_columns, unit
from .recency import weighted_interests
from .repeat import HABITS, RepeatScores, repeat_scores
from .similarity import HistoryItems, history_items


@dataclass(frozen=True)
class EvolvingInterestParams:
    """Defaults tuned on each customer's second-to-last invoice of Online Retail II (never the
    last, the test): bench/evaluate.py --tune reproduces the search."""

    short_half_life_hours: float = 72.0
    long_half_life_hours: float = 2160.0
    repeat_half_life_hours: float = 2160.0
    # Halves the recent-repeat score every this many baskets since the item was last taken.
    recent_baskets: float = 4.0
    similarity_half_life_hours: float = 720.0
    # The most recent and frequent history items that candidates are compared with.
    similarity_items: int = 128
    # Low: the best-matching history item decides, the rest only break near-ties.
    similarity_temperature: float = 0.05
    # Weights of the parts; the repeat frequency (in [0, 1]) sets the unit.
    repeat_boost: float = 1.0
    recent_weight: float = 0.3
    similarity_weight: float = 0.03
    interest_weight: float = 0.03


PARTS = ("known", "frequency", "recent", "similarity", "interest", *HABITS)


@dataclass(frozen=True)
class EvolvingProfile:
    vector: np.ndarray | None
    short_term: np.ndarray | None
    long_term: np.ndarray | None
    # (1 - cosine of short- to long-term interest) / 2: 0 steady, 1 turned right around.
    drift: float
    repeats: RepeatScores
    items: HistoryItems
    params: EvolvingInterestParams

    def scores(self, item_ids: Sequence[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        """The unweighted scores `relevance` sums, each float64 per candidate."""
        new = self.repeats.none_taken(item_ids)
        return {
            **self.repeats.of(item_ids, new),
            "similarity": self.items.soft_max_similarity(
                item_ids, vectors, self.params.similarity_temperature, new
            ),
            "interest": cosine(self.short_term, vectors),
        }

    def parts(self, item_ids: Sequence[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        """`scores`, and the user's habits repeated per candidate: a row per candidate of
        everything the two-stream model reads, for tuning and fitting."""
        n = len(item_ids)
        habits = {name: np.full(n, value) for name, value in self.repeats.habits.items()}
        return self.scores(item_ids, vectors) | habits

    def relevance(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        return combine(self.scores(item_ids, vectors), self.params)


def combine(parts: Mapping[str, np.ndarray], params: EvolvingInterestParams) -> np.ndarray:
    return (
        params.repeat_boost * parts["known"]
        + parts["frequency"]
        + params.recent_weight * parts["recent"]
        + params.similarity_weight * parts["similarity"]
        + params.interest_weight * parts["interest"]
    )


class EvolvingInterest:
    def __init__(
        self,
        params: EvolvingInterestParams | None = None,
        event_weights: Mapping[int, float] = EVENT_WEIGHTS,
    ) -> None:
        self.params = params or EvolvingInterestParams()
        self.event_weights = event_weights
        # A row per time scale: the short- and long-term interest, the similarity's item
        # weights, the repeats' baskets. One exp2 over the events serves all four.
        self.half_lives = np.array(
            [
                self.params.short_half_life_hours,
                self.params.long_half_life_hours,
                self.params.similarity_half_life_hours,
                self.params.repeat_half_life_hours,
            ]
        )[:, None]

    def profile(
        self, events: Sequence[HistoryEvent], vectors: np.ndarray, encoder: str = ""
    ) -> EvolvingProfile:
        """`encoder`: unused, this model learns nothing from embeddings."""
        history = history_columns(events, self.event_weights)
        empty = np.zeros((len(self.half_lives), 0))
        decays = decay(history.times, self.half_lives) if events else empty
        weighted = history.weights * decays[:3]
        short, long = weighted_interests(weighted[:2], vectors) if events else (None, None)
        drift = 0.0 if short is None or long is None else float(1.0 - short @ long) / 2.0
        vector = None
        if short is not None and long is not None:
            mixed = unit((1.0 - drift) * long.astype(np.float64) + drift * short)
            vector = None if mixed is None else mixed.astype(np.float32)
        return EvolvingProfile(
            vector=vector,
            short_term=short,
            long_term=long,
            drift=drift,
            repeats=repeat_scores(
                history, self.event_weights, decays[3], self.params.recent_baskets
            ),
            items=history_items(history, vectors, weighted[2], self.params.similarity_items),
            params=self.params,
        )
