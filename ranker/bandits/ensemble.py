"""Meta-policies over named member policies: EXP3 that learns which member earns the most, and a
fixed traffic split for A/B tests.

Either way the slate is produced by one member, and `Slate.policy` carries that member's name
so the reward for an item can be routed back (`ShownItem.member`) to the member that showed it.
Only that member ranks and learns from the request. Members may share one item-stats store,
then count-based members learn from each other's traffic. Ensembles do not nest.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ranker.bandits.base import Policy, RankContext, ShownItem, Slate


def _update_member(members: Mapping[str, Policy], shown: ShownItem, reward: float) -> None:
    # Feedback for a member removed since its slate was issued has nobody left to teach.
    member = members.get(shown.member)
    if member is not None:
        member.update(shown, reward)


class Exp3Ensemble:
    """EXP3 over members: adversarial-bandit weights, because members' rewards shift as they learn.

    A member is drawn with p = (1 - exploration) * softmax(log weights) + exploration / M, and a
    reward r for one of its items raises its log weight by exploration * (r / p) / M, the
    importance-weighted reward (p is the member's probability at update time, close to that at
    ranking time since weights move slowly). Slate propensities are the member's times p: the
    probability that this member was drawn and placed the item there, a lower bound of the
    marginal, which would also count other members placing the same item in the same slot.
    """

    name = "exp3_ensemble"

    def __init__(
        self, members: Mapping[str, Policy], exploration: float = 0.1, seed: int = 0
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if not 0.0 < exploration <= 1.0:
            raise ValueError(f"exploration must be in (0, 1], got {exploration}")
        self.members = dict(members)
        self.exploration = exploration
        self._names = list(self.members)
        self._log_weights = np.zeros(len(self._names))
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def probabilities(self) -> dict[str, float]:
        with self._lock:
            return dict(zip(self._names, self._probabilities().tolist(), strict=True))

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            probabilities = self._probabilities()
            chosen = int(
                np.searchsorted(np.cumsum(probabilities), self._rng.random() * probabilities.sum())
            )
            chosen = min(chosen, len(self._names) - 1)
        name = self._names[chosen]
        slate = self.members[name].rank(context, top_k)
        return replace(slate, propensities=slate.propensities * probabilities[chosen], policy=name)

    def update(self, shown: ShownItem, reward: float) -> None:
        _update_member(self.members, shown, reward)
        if shown.member not in self.members:
            return
        with self._lock:
            chosen = self._names.index(shown.member)
            probability = self._probabilities()[chosen]
            self._log_weights[chosen] += self.exploration * reward / probability / len(self._names)

    def _probabilities(self) -> np.ndarray:
        weights = np.exp(self._log_weights - self._log_weights.max())
        return (1.0 - self.exploration) * weights / weights.sum() + self.exploration / len(weights)


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
        if set(shares) != set(members):
            raise ValueError("shares must name exactly the members")
        if any(share < 0 for share in shares.values()) or sum(shares.values()) <= 0:
            raise ValueError("shares must be non-negative and not all zero")
        self.members = dict(members)
        self.salt = salt
        self._names = list(self.members)
        share_array = np.array([shares[name] for name in self._names], dtype=np.float64)
        self._bucket_ends = np.cumsum(share_array) / share_array.sum()

    def member_for(self, user_id: str) -> str:
        digest = hashlib.sha256(f"{self.salt}\0{user_id}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") / 2.0**64
        position = int(np.searchsorted(self._bucket_ends, bucket, side="right"))
        return self._names[min(position, len(self._names) - 1)]

    def rank(self, context: RankContext, top_k: int) -> Slate:
        name = self.member_for(context.user_id)
        return replace(self.members[name].rank(context, top_k), policy=name)

    def update(self, shown: ShownItem, reward: float) -> None:
        _update_member(self.members, shown, reward)
