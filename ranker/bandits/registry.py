"""The served policy, built from plain settings values, under names that never change.

Names are part of the API: they appear in `RankResponse.policy`, in issued events and
dashboards, and a request pins a policy by name (`RankRequest.policy`). A member name always
builds the same kind of policy; its parameters come from the `PolicySpec`.

`policy` picks what serves: `exp3_ensemble` (EXP3 over `ensemble_members`), `traffic_split`
(a fixed A/B split given by `ab_split`), or one member name alone. The ensemble's members share
their learned state (one store per kind of item statistics, the contextual linear model), and
each store also observes the slates and rewards of the members that do not keep it, so every
member learns from all the ensemble's traffic rather than from its share of it. A/B arms never
share: each arm learns only from its own users, so the test compares policies, not one pooled
model.
Contextual members keep item statistics too: their reward lift ranks users without history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ranker.bandits.base import Policy
from ranker.bandits.count_policy import CountPolicy
from ranker.bandits.ensemble import Exp3Ensemble, ItemStatsObserver, Observer, TrafficSplit
from ranker.bandits.epsilon_greedy import EpsilonGreedy
from ranker.bandits.item_stats import InMemoryItemStats, ItemStatsStore
from ranker.bandits.linear_model import ContextualFeedback, RidgePerDimension
from ranker.bandits.linear_policy import LinearPolicy
from ranker.bandits.linear_thompson import LinearThompson
from ranker.bandits.linucb import LinUCB
from ranker.bandits.sliding_window_stats import SlidingWindowItemStats
from ranker.bandits.softmax import Softmax
from ranker.bandits.thompson import BetaThompson
from ranker.bandits.ucb1 import UCB1

ENSEMBLE = Exp3Ensemble.name
SPLIT = TrafficSplit.name
# Chosen on the online replay (bench/replay.py, all customers, --seed 0 and --seed 1): the
# contextual members on forgetting item statistics earned the most, ahead of every count-based
# policy, and EXP3 lands near the average of its members, because members that differ by under
# 1% of reward are more alike than its importance-weighted estimates can tell apart in 13,000
# invoices. A count-based member would then cost the ensemble its share of the traffic. Every
# other policy stays available by name.
FEATURE_DIM = 16  # contextual features after projection; see linear_model
DEFAULT_MEMBERS = "linucb_discounted,linear_thompson_discounted"


@dataclass(frozen=True)
class PolicySpec:
    # exp3_ensemble, traffic_split, or a member name (see `member_names`).
    policy: str = ENSEMBLE
    # Comma-separated member names of the EXP3 ensemble.
    ensemble_members: str = DEFAULT_MEMBERS
    # "name:share,name:share" for traffic_split; shares need not sum to 1.
    ab_split: str = ""
    # Reshuffles users between the split's arms for a new A/B test.
    split_salt: str = ""
    seed: int = 0
    # How much learned reward moves a score relative to the interest model's relevance (a
    # probability of being taken next).
    feedback_weight: float = 0.2
    # UCB1's and LinUCB's optimism, in reward units (scaled by feedback_weight like the reward).
    # Both tuned on the replay (bench/replay.py) over 120 customers of --seed 1, checked on
    # --seed 2, with the two-stream interest model: feedback_weight in {0.02, 0.05, 0.1, 0.2,
    # 0.5}, exploration in {0.3, 1, 3}. Larger weights let the contextual members pull ahead of
    # the count-based ones; UCB1's optimism then costs more than it finds above 0.3.
    exploration: float = 0.3
    epsilon: float = 0.1
    epsilon_decay: float = 0.001
    temperature: float = 0.05
    thompson_scale: float = 0.05
    # EXP3's share of uniformly spread traffic, which is also its learning rate.
    ensemble_exploration: float = 0.1
    # The most reward one slate can earn: the usual slate size (settings.default_top_k).
    max_slate_reward: float = 10.0
    # Per-slate discount of `_discounted` members and slate window of `_sliding_window` ones.
    discount: float = 0.999
    window: int = 5000
    # Items whose statistics each count-based member keeps.
    known_items: int = 200_000
    # The contextual members' ridge prior.
    ridge: float = 1.0


class _Stores:
    """The learned state members are built on. One per member keeps members apart (solo, A/B
    arms); one for a whole ensemble lets every member learn from all the ensemble's traffic."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self._made: dict[str, object] = {}

    def _once(self, key: str, make: Callable[[], object]) -> Any:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def stats(self) -> InMemoryItemStats:
        return self._once("stats", lambda: InMemoryItemStats(self.spec.known_items))

    def discounted(self) -> InMemoryItemStats:
        return self._once(
            "discounted", lambda: InMemoryItemStats(self.spec.known_items, self.spec.discount)
        )

    def window(self) -> SlidingWindowItemStats:
        return self._once("window", lambda: SlidingWindowItemStats(self.spec.window))

    def models(self, seed: int, stats: str) -> RidgePerDimension:
        """The linear models beside the item statistics named `stats`: they learn the reward
        beyond those statistics' rate, so members on other statistics need other models."""
        return self._once(
            f"models_{stats}", lambda: RidgePerDimension(FEATURE_DIM, self.spec.ridge, seed)
        )


def _builders(spec: PolicySpec, stores: _Stores) -> dict[str, Callable[[int, str], Policy]]:
    """Member name -> a builder taking a seed and that name."""
    weight = spec.feedback_weight

    def ucb1(seed: int, name: str) -> Policy:
        return UCB1(stores.stats(), spec.exploration, weight, name=name)

    def contextual(
        policy: type[LinUCB] | type[LinearThompson], spread: float, stats: str = "stats"
    ) -> Callable[[int, str], Policy]:
        """`spread`: the policy's exploration (LinUCB's bonus, linear Thompson's scale);
        `stats`: the `_Stores` method giving its item statistics."""
        return lambda seed, name: policy(
            spread,
            weight,
            seed=seed,
            name=name,
            stats=getattr(stores, stats)(),
            models=stores.models(seed, stats),
        )

    return {
        "ucb1": ucb1,
        # The service default before the registry, kept so its name keeps working.
        "similarity_ucb": ucb1,
        "ucb1_discounted": lambda seed, name: UCB1(
            stores.discounted(), spec.exploration, weight, name=name
        ),
        "epsilon_greedy": lambda seed, name: EpsilonGreedy(
            stores.stats(), spec.epsilon, spec.epsilon_decay, weight, seed, name=name
        ),
        "thompson": lambda seed, name: BetaThompson(stores.stats(), weight, seed, name),
        "thompson_discounted": lambda seed, name: BetaThompson(
            stores.discounted(), weight, seed, name
        ),
        "thompson_sliding_window": lambda seed, name: BetaThompson(
            stores.window(), weight, seed, name
        ),
        "softmax": lambda seed, name: Softmax(
            stores.stats(), spec.temperature, weight, seed, name=name
        ),
        "linucb": contextual(LinUCB, spec.exploration),
        "linear_thompson": contextual(LinearThompson, spec.thompson_scale),
        "linucb_discounted": contextual(LinUCB, spec.exploration, "discounted"),
        "linear_thompson_discounted": contextual(LinearThompson, spec.thompson_scale, "discounted"),
    }


def member_names() -> tuple[str, ...]:
    """Every name `build_member` knows."""
    spec = PolicySpec()
    return tuple(_builders(spec, _Stores(spec)))


def build_member(
    spec: PolicySpec, name: str, seed_offset: int = 0, stores: _Stores | None = None
) -> Policy:
    """One member; on its own state unless `stores` (an ensemble's) is given."""
    builders = _builders(spec, stores or _Stores(spec))
    if name not in builders:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(builders)}")
    return builders[name](spec.seed + seed_offset, name)


def parse_members(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("ensemble_members: name at least one member")
    if len(set(names)) != len(names):
        raise ValueError(f"ensemble_members: a member is named twice in {text!r}")
    return names


def parse_split(text: str) -> dict[str, float]:
    """'name:share,name:share' -> {name: share}."""
    shares: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, share = part.partition(":")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or not value >= 0.0:
            raise ValueError(f"ab_split: {part!r} is not name:share with a share >= 0")
        if name.strip() in shares:
            raise ValueError(f"ab_split: {name.strip()!r} is named twice")
        shares[name.strip()] = value
    if not shares or sum(shares.values()) <= 0.0:
        raise ValueError(f"ab_split: {text!r} gives no traffic to anyone")
    return shares


def _members(spec: PolicySpec, names: list[str], stores: _Stores | None) -> dict[str, Policy]:
    # Distinct seeds, so that two randomised members never draw in lockstep.
    return {name: build_member(spec, name, offset, stores) for offset, name in enumerate(names, 1)}


def _shared_state_observers(members: Mapping[str, Policy]) -> list[Observer]:
    """Every store of learned state that only some members feed, taught by the other members'
    slates too: the contextual members' linear model, and each kind of item statistics."""
    observers = []
    contextual = [m for m in members.values() if isinstance(m, LinearPolicy)]
    for models in {id(m.models): m.models for m in contextual}.values():
        fed_by = [m for m in contextual if m.models is models]
        # Item statistics get observers of their own below: this one only reads them.
        model_only = ContextualFeedback(models, fed_by[0].learned.stats, records_stats=False)
        observers.append(Observer(model_only, frozenset(m.name for m in fed_by)))
    stats_of = {name: _item_stats(member) for name, member in members.items()}
    stores = {id(store): store for store in stats_of.values() if store is not None}
    for store in stores.values():
        fed_by = frozenset(name for name, kept in stats_of.items() if kept is store)
        if len(fed_by) < len(members):
            observers.append(Observer(ItemStatsObserver(store), fed_by))
    return observers


def _item_stats(member: Policy) -> ItemStatsStore | None:
    if isinstance(member, CountPolicy):
        return member.stats
    if isinstance(member, LinearPolicy):
        return member.learned.stats
    return None


def build_policy(spec: PolicySpec) -> Policy:
    """The policy `spec.policy` names; ValueError with what is wrong for a bad spec."""
    if spec.policy == ENSEMBLE:
        stores = _Stores(spec)
        members = _members(spec, parse_members(spec.ensemble_members), stores)
        return Exp3Ensemble(
            members,
            spec.ensemble_exploration,
            spec.seed,
            spec.max_slate_reward,
            _shared_state_observers(members),
        )
    if spec.policy == SPLIT:
        shares = parse_split(spec.ab_split)
        return TrafficSplit(_members(spec, list(shares), None), shares, spec.split_salt)
    return build_member(spec, spec.policy)


def spec_from(settings: object) -> PolicySpec:
    """A spec from any object (the ranker's Settings) with attributes named as PolicySpec's
    fields; fields it lacks keep their defaults."""
    return PolicySpec(
        **{
            f.name: getattr(settings, f.name)
            for f in fields(PolicySpec)
            if hasattr(settings, f.name)
        }
    )


def pinnable_names(policy: Policy) -> frozenset[str]:
    """The names a request may pin: the policy's own and, for a meta-policy, its members'."""
    members: Mapping[str, Policy] = getattr(policy, "members", {})
    return frozenset({policy.name, *members})
