"""Meta-policies over named member policies: EXP3 that learns which member earns the most, and a
fixed traffic split for A/B tests.

Either way the slate is produced by one member, and `Slate.policy` carries that member's name
so the reward for an item can be routed back (`ShownItem.member`) to the member that showed it.
Only that member ranks and learns from the request. Members may share state (one item-stats
store, one linear model), then each learns from the others' traffic too; the meta-policy calls
its members one at a time, so shared state stays consistent. Shared state that only some
members feed (the contextual members' linear model) can be an `Observer` of the ensemble: it is
then taught by every slate, so the members that use it learn even while EXP3 starves them, and
EXP3 compares members that know the same. Ensembles do not nest.

A request may pin a member (`RankContext.pinned`): that member ranks whatever the weights or
the split say, the slate is marked `pinned`, and its propensities are the member's own, because
the meta-policy's choice was forced (probability 1). Feedback on a pinned slate still teaches
the member, but not EXP3's weights: their importance weights hold only for slates EXP3 drew.
Pinning the meta-policy's own name lets it choose as usual.
"""

from __future__ import annotations

import hashlib
import math
import threading
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Protocol

import numpy as np

from ranker.bandits.base import Policy, RankContext, ShownItem, Slate, check_update
from ranker.bandits.item_stats import ItemStatsStore


class SlateObserver(Protocol):
    """Learned state that members share, taught by every slate the ensemble shows."""

    def observe_shown(self, context: RankContext, slate: Slate) -> None: ...

    def observe_reward(self, shown: ShownItem, reward: float) -> None: ...


class ItemStatsObserver:
    """Item statistics of some members, taught by the other members' slates and rewards too:
    members that keep different statistics (a forgetting one beside a plain one) then each
    count the whole ensemble's traffic, as they would alone."""

    def __init__(self, stats: ItemStatsStore) -> None:
        self.stats = stats

    def observe_shown(self, context: RankContext, slate: Slate) -> None:
        self.stats.record_shows([context.item_ids[i] for i in slate.indices])

    def observe_reward(self, shown: ShownItem, reward: float) -> None:
        self.stats.record_reward(shown.item_id, reward)


@dataclass(frozen=True)
class Observer:
    state: SlateObserver
    # Members whose own slates and rewards already teach the state: it is not taught twice.
    fed_by: frozenset[str]


class Members:
    """Named member policies, called one at a time (they may share state), routing feedback to
    the member that showed the item."""

    def __init__(self, members: Mapping[str, Policy], observers: Sequence[Observer] = ()) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        for key, member in members.items():
            if key != member.name:
                raise ValueError(f"member {key!r} is a policy named {member.name!r}; use one name")
        self.policies = dict(members)
        self.names = list(members)
        self.observers = tuple(observers)
        self._lock = threading.Lock()

    def rank(self, name: str, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            slate = self.policies[name].rank(context, top_k)
            if slate.policy != name:
                slate = replace(slate, policy=name)
            for observer in self.observers:
                if name not in observer.fed_by:
                    observer.state.observe_shown(context, slate)
            return slate

    def pinned_slate(self, own_name: str, context: RankContext, top_k: int) -> Slate | None:
        """The pinned member's slate, or None when nothing but the meta-policy is pinned."""
        if not context.pinned or context.pinned == own_name:
            return None
        if context.pinned not in self.policies:
            raise ValueError(f"unknown policy {context.pinned!r}; members are {self.names}")
        return replace(self.rank(context.pinned, context, top_k), pinned=True)

    def update(self, shown: ShownItem, reward: float) -> None:
        check_update(shown, reward, self.policies)
        with self._lock:
            self.policies[shown.member].update(shown, reward)
            for observer in self.observers:
                if shown.member not in observer.fed_by:
                    observer.state.observe_reward(shown, reward)


# EXP3 keeps separate weights per segment: members that need an interest (contextual ones) can
# win for users with history while count-based ones win for users without.
WITH_INTEREST = "with_interest"
WITHOUT_INTEREST = "without_interest"


def segment_of(interest: np.ndarray | None) -> str:
    return WITHOUT_INTEREST if interest is None else WITH_INTEREST


class Exp3Ensemble:
    """EXP3 over members: adversarial-bandit weights, because members' rewards shift as they learn.

    Per segment (`segment_of` the user's interest), a member is drawn with p = (1 - exploration)
    * softmax(log weights) + exploration / M, and a reward r for one of its items raises its log
    weight by exploration * (r / max_slate_reward / p) / M, the importance-weighted reward (p is
    the member's probability at update time, close to that at ranking time since weights move
    slowly). EXP3's step assumes a round earns at most 1, hence the division by the most a slate
    can earn (its size when each item can earn 1). Slate propensities are the member's times p:
    the probability that this member was drawn and placed the item there, a lower bound of the
    marginal, which would also count other members placing the same item in the same slot.
    """

    name = "exp3_ensemble"

    def __init__(
        self,
        members: Mapping[str, Policy],
        exploration: float = 0.1,
        seed: int = 0,
        max_slate_reward: float = 1.0,
        observers: Sequence[Observer] = (),
    ) -> None:
        """`observers`: state shared by some members that learns from every slate, so that a
        member the weights starve still learns (e.g. the contextual members' linear model)."""
        if not 0.0 < exploration <= 1.0:
            raise ValueError(f"exploration must be in (0, 1], got {exploration}")
        if max_slate_reward <= 0.0:
            raise ValueError(f"max_slate_reward must be positive, got {max_slate_reward}")
        self._members = Members(members, observers)
        self.members = self._members.policies
        self.exploration = exploration
        self.max_slate_reward = max_slate_reward
        self._names = self._members.names
        # Python lists, not numpy: for a handful of members the calls cost more than the sums.
        self._log_weights = {
            segment: [0.0] * len(self._names) for segment in (WITH_INTEREST, WITHOUT_INTEREST)
        }
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def probabilities(self, segment: str = WITH_INTEREST) -> dict[str, float]:
        with self._lock:
            return dict(zip(self._names, self._probabilities(segment), strict=True))

    def rank(self, context: RankContext, top_k: int) -> Slate:
        pinned = self._members.pinned_slate(self.name, context, top_k)
        if pinned is not None:
            return pinned
        with self._lock:
            probabilities = self._probabilities(segment_of(context.interest))
            ends = list(accumulate(probabilities))
            chosen = bisect_left(ends, self._rng.random() * ends[-1])
            chosen = min(chosen, len(self._names) - 1)
        slate = self._members.rank(self._names[chosen], context, top_k)
        # Built, not `replace`d: replace's field walk costs as much as the slate.
        return Slate(
            indices=slate.indices,
            scores=slate.scores,
            propensities=slate.propensities * probabilities[chosen],
            explored=slate.explored,
            policy=slate.policy,
            pinned=slate.pinned,
        )

    def update(self, shown: ShownItem, reward: float) -> None:
        self._members.update(shown, reward)
        if shown.pinned:
            return
        segment = segment_of(shown.interest)
        with self._lock:
            chosen = self._names.index(shown.member)
            probability = self._probabilities(segment)[chosen]
            step = self.exploration * reward / self.max_slate_reward / probability
            self._log_weights[segment][chosen] += step / len(self._names)

    def _probabilities(self, segment: str) -> list[float]:
        log_weights = self._log_weights[segment]
        top = max(log_weights)
        weights = [math.exp(weight - top) for weight in log_weights]
        total = sum(weights)
        uniform = self.exploration / len(weights)
        return [(1.0 - self.exploration) * weight / total + uniform for weight in weights]


class TrafficSplit:
    """A fixed split of users between members, stable per user id, for A/B tests.

    A user's bucket is a hash of the salt and user id, so the same user always meets the same
    member (across processes and restarts) and a new salt reshuffles users for a new test. The
    assignment adds no randomness per request, so propensities are the member's own.
    """

    name = "traffic_split"

    def __init__(
        self, members: Mapping[str, Policy], shares: Mapping[str, float], salt: str = ""
    ) -> None:
        self._members = Members(members)
        self.members = self._members.policies
        if set(shares) != set(members):
            raise ValueError("shares must name exactly the members")
        if any(share < 0 for share in shares.values()) or sum(shares.values()) <= 0:
            raise ValueError("shares must be non-negative and not all zero")
        self.salt = salt
        self._names = self._members.names
        share_array = np.array([shares[name] for name in self._names], dtype=np.float64)
        self._bucket_ends = np.cumsum(share_array) / share_array.sum()

    def member_for(self, user_id: str) -> str:
        digest = hashlib.sha256(f"{self.salt}\0{user_id}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") / 2.0**64
        position = int(np.searchsorted(self._bucket_ends, bucket, side="right"))
        return self._names[min(position, len(self._names) - 1)]

    def rank(self, context: RankContext, top_k: int) -> Slate:
        pinned = self._members.pinned_slate(self.name, context, top_k)
        if pinned is not None:
            return pinned
        return self._members.rank(self.member_for(context.user_id), context, top_k)

    def update(self, shown: ShownItem, reward: float) -> None:
        self._members.update(shown, reward)
