"""The interface every ranking policy implements, and what it is given and gives back.

A policy ranks in `rank` and learns in `update`. Shows are recorded while ranking (a shown item
that earns nothing is feedback too), rewards arrive later through `update` with the features
the item was ranked with, so contextual policies learn from what they actually scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ranker.bandits.item_stats import ItemStatsStore
from ranker.interest import CosineProfile

# Every count-based policy starts an item at this click rate, so an item without feedback
# neither gains nor loses against its content similarity.
PRIOR_REWARDS = 1.0
PRIOR_SHOWS = 10.0
PRIOR_RATE = PRIOR_REWARDS / PRIOR_SHOWS

# From this many candidates a partial sort and its check for ties at the cut cost less than one
# stable sort of them all (callgrind: 41k instructions against 24k at 100, 64k against 228k at
# 1,000).
PARTIAL_SORT_FROM = 180

# Randomised policies never report a propensity below this, so inverse-propensity weights stay
# finite where an approximation would round a small probability down to zero.
MIN_PROPENSITY = 1e-6


@dataclass(frozen=True)
class RankContext:
    user_id: str
    item_ids: Sequence[str]
    # Candidate embeddings, one unit row per item.
    vectors: np.ndarray
    # The user's interest as a unit vector; None for a user without usable history.
    interest: np.ndarray | None
    # The interest model's score per candidate (float64): what exploitation starts from.
    relevance: np.ndarray
    # A policy the request pinned (an ensemble member's name); "" lets the policy choose.
    pinned: str = ""


def cosine_context(
    user_id: str,
    item_ids: Sequence[str],
    vectors: np.ndarray,
    interest: np.ndarray | None,
    pinned: str = "",
) -> RankContext:
    """A context whose relevance is the plain cosine to the interest, for simulations and
    benchmarks that have vectors but no history."""
    relevance = CosineProfile(interest).relevance(item_ids, vectors)
    return RankContext(user_id, item_ids, vectors, interest, relevance, pinned)


@dataclass(frozen=True)
class Slate:
    # Positions into the context's candidates, best first.
    indices: np.ndarray
    scores: np.ndarray
    # Probability with which the policy put each item in its slot.
    propensities: np.ndarray
    # True where exploration, not exploitation, placed the item.
    explored: np.ndarray
    # The policy that chose the slate: an ensemble names the member it routed to.
    policy: str
    # True when the request pinned the policy, so no meta-policy drew it (see `ShownItem`).
    pinned: bool = False


@dataclass(frozen=True)
class ShownItem:
    """An item of an earlier slate as it was ranked, which is what a reward is credited to."""

    item_id: str
    # The item's embedding as it was ranked.
    vector: np.ndarray
    # The user's interest at ranking time; None when the user had none.
    interest: np.ndarray | None
    # `Slate.policy` of the slate that showed the item.
    member: str
    # `Slate.pinned` of that slate: the member still learns, a meta-policy's weights do not,
    # because its importance weights hold only for slates it drew itself.
    pinned: bool = False


class Policy(Protocol):
    name: str

    def rank(self, context: RankContext, top_k: int) -> Slate:
        """Chooses the slate and records that its items were shown."""
        ...

    def update(self, shown: ShownItem, reward: float) -> None:
        """Learns from a reward in [0, 1] for an item shown in an earlier slate."""
        ...


def check_update(shown: ShownItem, reward: float, members: Collection[str]) -> None:
    """Rejects feedback that no slate of this policy can have earned: an item shown by a policy
    that is not among `members`, or a reward outside [0, 1] (NaN included)."""
    if shown.member not in members:
        raise ValueError(
            f"feedback for an item shown by {shown.member!r}, not by {sorted(members)}"
        )
    if not 0.0 <= reward <= 1.0:
        raise ValueError(f"reward must be in [0, 1], got {reward}")


def content_and_feedback(
    context: RankContext, stats: ItemStatsStore, feedback_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """(relevance plus weighted reward lift, shows): what count-based policies exploit."""
    shows, rewards = stats.counts(context.item_ids)
    return context.relevance + feedback_weight * reward_lift(shows, rewards), shows


def reward_lift(shows: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """How far each item's prior-smoothed reward rate is above the prior; 0 for unseen items."""
    return (rewards + PRIOR_REWARDS) / (shows + PRIOR_SHOWS) - PRIOR_RATE


def top_k_order(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the top_k scores, best first; equal scores keep the candidates' order."""
    # Array methods, not their np.* twins: at a slate's size the wrappers cost a third.
    descending = -scores
    if _sorts_partially(len(scores), top_k):
        head = _top_k_unordered(descending, top_k)
        if head is not None:
            head.sort()
            return head[descending[head].argsort(kind="stable")]
    return descending.argsort(kind="stable")[:top_k]


def _sorts_partially(candidates: int, top_k: int) -> bool:
    return candidates >= PARTIAL_SORT_FROM and top_k < candidates


def _top_k_unordered(descending: np.ndarray, top_k: int) -> np.ndarray | None:
    """The positions of the top_k smallest values, in no order, or None when a tie at the cut
    leaves to the candidates' order which of them make it (top_k below the length)."""
    # A partial sort: 1,000 candidates for a slate of 10 need not be sorted whole.
    head = descending.argpartition(top_k - 1)[:top_k]
    # The cut in Python: a numpy reduction costs more than the list for a slate of ten.
    if np.count_nonzero(descending <= max(descending[head].tolist())) == top_k:
        return head
    return None


def explored_mask(indices: np.ndarray, exploit: np.ndarray, top_k: int) -> np.ndarray:
    """True for slate items that exploitation alone would have left out of the slate."""
    # Exploitation's slate as a set, unordered where it can be, and membership in Python:
    # np.isin sorts, and array comparisons cost more than the lists for a slate of ten.
    greedy = _top_k_unordered(-exploit, top_k) if _sorts_partially(len(exploit), top_k) else None
    if greedy is None:
        greedy = top_k_order(exploit, top_k)
    chosen = set(greedy.tolist())
    return np.array([index not in chosen for index in indices.tolist()], dtype=bool)


def slate_from_scores(scores: np.ndarray, exploit: np.ndarray, top_k: int, policy: str) -> Slate:
    """A deterministic slate by score; items that exploitation alone would not pick are explored."""
    order = top_k_order(scores, top_k)
    # Not np.ones, whose Python layer costs twice the fill.
    propensities = np.empty(len(order))
    propensities.fill(1.0)
    return Slate(
        indices=order,
        scores=scores[order],
        propensities=propensities,
        explored=explored_mask(order, exploit, top_k),
        policy=policy,
    )


def sampled_slate(
    scores: np.ndarray,
    exploit: np.ndarray,
    top_k: int,
    score_std: Callable[[np.ndarray], list[float]],
    policy: str,
) -> Slate:
    """The slate by sampled `scores`, with propensities estimated against exploitation's rival
    (`propensities_against_rival`) and explored flags against exploitation's slate."""
    indices = top_k_order(scores, top_k)
    chosen = indices.tolist()
    # Exploitation's order once, one item past the slate: its first top_k are exploitation's
    # slate, and its first item that the slate left out is the rival (argmax breaks ties by
    # position as the stable order does). One sort instead of a sort, a copy and an argmax.
    greedy = top_k_order(exploit, top_k + 1).tolist()
    exploited = set(greedy[:top_k])
    shown = set(chosen)
    rival = next((index for index in greedy if index not in shown), None)
    return Slate(
        indices=indices,
        scores=scores[indices],
        propensities=propensities_against_rival(exploit, chosen, rival, score_std),
        explored=np.array([index not in exploited for index in chosen], dtype=bool),
        policy=policy,
    )


def propensities_against_rival(
    exploit: np.ndarray,
    indices: list[int],
    rival: int | None,
    score_std: Callable[[np.ndarray], list[float]],
) -> np.ndarray:
    """Estimated propensities for a slate drawn by sampling scores around `exploit`.

    Each item's estimate is the chance that its sampled score, taken as Normal(exploit,
    score_std), beats that of the rival: the best candidate by exploitation score that the slate
    left out (None when it left none out: then every propensity is 1). A pairwise estimate of
    being in the slate, not of the exact slot; cheap because only the slate and one rival need
    a spread. Floored at MIN_PROPENSITY.
    """
    if rival is None:
        return np.ones(len(indices))
    rows = np.array([*indices, rival])
    stds = score_std(rows)
    *scores, rival_score = exploit.take(rows).tolist()
    # In Python from here: numpy's calls cost more than the arithmetic for a slate of ten.
    rival_variance = stds[-1] ** 2
    beaten = []
    for score, std in zip(scores, stds[:-1], strict=True):
        spread = max(math.sqrt(std * std + rival_variance), 1e-12)
        beats = 0.5 * math.erfc(-((score - rival_score) / spread / math.sqrt(2.0)))
        beaten.append(min(max(beats, MIN_PROPENSITY), 1.0))
    return np.array(beaten)
