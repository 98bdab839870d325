"""The meta-policies: EXP3 over members and the fixed traffic split for A/B tests."""

from collections import Counter

import numpy as np
import pytest

from ranker.bandits.base import RankContext, ShownItem, Slate, cosine_context
from ranker.bandits.ensemble import Exp3Ensemble, TrafficSplit
from ranker.bandits.epsilon_greedy import EpsilonGreedy
from ranker.bandits.item_stats import InMemoryItemStats

CONTEXT = cosine_context(
    user_id="u",
    item_ids=["a", "b", "c"],
    vectors=np.eye(3, dtype=np.float32),
    interest=np.array([0.6, 0.8, 0.0], dtype=np.float32),
)


class FixedPick:
    """A member that always shows one item, with a known propensity, and counts its rewards."""

    def __init__(self, name: str, index: int, propensity: float = 1.0) -> None:
        self.name = name
        self.index = index
        self.propensity = propensity
        self.rewards: list[tuple[str, float]] = []

    def rank(self, context: RankContext, top_k: int) -> Slate:
        return Slate(
            indices=np.array([self.index]),
            scores=np.array([0.5]),
            propensities=np.array([self.propensity]),
            explored=np.array([False]),
            policy=self.name,
        )

    def update(self, shown: ShownItem, reward: float) -> None:
        self.rewards.append((shown.item_id, reward))


def shown(slate: Slate) -> ShownItem:
    index = int(slate.indices[0])
    return ShownItem(
        CONTEXT.item_ids[index], CONTEXT.vectors[index], CONTEXT.interest, slate.policy
    )


def test_exp3_shifts_weight_to_the_member_that_earns_more():
    good, poor = FixedPick("good", 0), FixedPick("poor", 1)
    ensemble = Exp3Ensemble({"good": good, "poor": poor}, exploration=0.1, seed=0)
    clicks = np.random.default_rng(1)
    rates = {"good": 0.5, "poor": 0.1}
    for _ in range(600):
        slate = ensemble.rank(CONTEXT, top_k=1)
        if clicks.random() < rates[slate.policy]:
            ensemble.update(shown(slate), 1.0)
    probabilities = ensemble.probabilities()
    assert probabilities["good"] > 0.9
    assert probabilities["poor"] == pytest.approx(1 - probabilities["good"])
    assert good.rewards and all(item == "a" for item, _ in good.rewards)
    assert all(item == "b" for item, _ in poor.rewards)


def test_exp3_names_the_member_and_folds_its_draw_into_propensities():
    ensemble = Exp3Ensemble({"x": FixedPick("x", 0, 0.5), "y": FixedPick("y", 1, 0.5)}, 0.2)
    slate = ensemble.rank(CONTEXT, top_k=1)
    assert slate.policy in {"x", "y"}
    assert slate.propensities.tolist() == [0.25]


def test_exp3_is_deterministic_given_its_seed_and_its_members():
    def run(seed: int) -> list[tuple[str, list[int]]]:
        members = {
            f"eps{e}": EpsilonGreedy(InMemoryItemStats(10), epsilon=e, seed=seed, name=f"eps{e}")
            for e in (0, 0.5)
        }
        ensemble, out = Exp3Ensemble(members, seed=seed), []
        for _ in range(20):
            slate = ensemble.rank(CONTEXT, top_k=2)
            ensemble.update(shown(slate), 1.0)
            out.append((slate.policy, slate.indices.tolist()))
        return out

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_feedback_for_a_policy_that_is_no_member_is_refused():
    ensemble = Exp3Ensemble({"x": FixedPick("x", 0)})
    with pytest.raises(ValueError, match="'gone'"):
        ensemble.update(ShownItem("a", CONTEXT.vectors[0], None, "gone"), 1.0)
    assert ensemble.probabilities() == {"x": 1.0}


def test_members_must_carry_the_names_they_are_listed_under():
    with pytest.raises(ValueError, match="one name"):
        Exp3Ensemble({"y": FixedPick("x", 0)})


def pinned_context(name: str) -> RankContext:
    return cosine_context("u", CONTEXT.item_ids, CONTEXT.vectors, CONTEXT.interest, pinned=name)


def test_a_pinned_member_ranks_with_its_own_propensities_and_leaves_exp3_weights_alone():
    members = {"x": FixedPick("x", 0, 0.5), "y": FixedPick("y", 1, 0.5)}
    ensemble = Exp3Ensemble(members, exploration=0.2, seed=0)
    for _ in range(20):
        slate = ensemble.rank(pinned_context("y"), top_k=1)
        assert (slate.policy, slate.pinned, slate.propensities.tolist()) == ("y", True, [0.5])
        ensemble.update(ShownItem("b", CONTEXT.vectors[1], None, "y", pinned=True), 1.0)
    assert ensemble.probabilities() == {"x": 0.5, "y": 0.5}
    assert len(members["y"].rewards) == 20
    unpinned = ensemble.rank(pinned_context("exp3_ensemble"), top_k=1)
    assert not unpinned.pinned
    assert unpinned.propensities.tolist() == [0.25]


def test_pinning_overrides_the_split_and_an_unknown_pin_is_refused():
    split = TrafficSplit({"a": FixedPick("a", 0), "b": FixedPick("b", 1)}, {"a": 1.0, "b": 0.0})
    slate = split.rank(pinned_context("b"), top_k=1)
    assert (slate.policy, slate.pinned, slate.indices.tolist()) == ("b", True, [1])
    with pytest.raises(ValueError, match="unknown policy 'c'"):
        split.rank(pinned_context("c"), top_k=1)


def test_traffic_split_is_stable_per_user_and_matches_the_shares():
    split = TrafficSplit(
        {"control": FixedPick("control", 0), "treatment": FixedPick("treatment", 1)},
        {"control": 0.8, "treatment": 0.2},
        salt="test-1",
    )
    users = [f"user-{n}" for n in range(5000)]
    assigned = [split.member_for(user) for user in users]
    assert assigned == [split.member_for(user) for user in users]
    assert Counter(assigned)["treatment"] / len(users) == pytest.approx(0.2, abs=0.02)
    context = cosine_context("user-7", CONTEXT.item_ids, CONTEXT.vectors, CONTEXT.interest)
    slate = split.rank(context, top_k=1)
    assert slate.policy == split.member_for("user-7")
    assert slate.propensities.tolist() == [1.0]


def test_a_new_salt_reshuffles_users_and_a_zero_share_gets_nobody():
    members = {"a": FixedPick("a", 0), "b": FixedPick("b", 1), "off": FixedPick("off", 2)}
    shares = {"a": 0.5, "b": 0.5, "off": 0.0}
    first, second = TrafficSplit(members, shares, "one"), TrafficSplit(members, shares, "two")
    users = [f"user-{n}" for n in range(1000)]
    moved = sum(first.member_for(u) != second.member_for(u) for u in users)
    assert 400 < moved < 600
    assert "off" not in {first.member_for(u) for u in users}


def test_traffic_split_routes_feedback_to_the_member_that_showed_the_item():
    members = {"a": FixedPick("a", 0), "b": FixedPick("b", 1)}
    split = TrafficSplit(members, {"a": 1.0, "b": 1.0})
    split.update(ShownItem("b", CONTEXT.vectors[1], None, "b"), 0.5)
    assert members["b"].rewards == [("b", 0.5)]
    assert members["a"].rewards == []
