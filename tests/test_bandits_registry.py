"""Building the served policy from plain settings values (ranker/bandits/registry.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ranker.bandits.base import ShownItem, cosine_context
from ranker.bandits.ensemble import Exp3Ensemble, TrafficSplit
from ranker.bandits.linear_policy import LinearPolicy
from ranker.bandits.linucb import LinUCB
from ranker.bandits.registry import (
    DEFAULT_MEMBERS,
    ENSEMBLE,
    SPLIT,
    PolicySpec,
    build_policy,
    member_names,
    parse_members,
    parse_split,
    pinnable_names,
    spec_from,
)


def test_the_default_is_an_exp3_ensemble_with_contextual_members():
    policy = build_policy(PolicySpec())
    assert isinstance(policy, Exp3Ensemble)
    assert list(policy.members) == DEFAULT_MEMBERS.split(",")
    assert all(isinstance(member, LinearPolicy) for member in policy.members.values())
    assert pinnable_names(policy) == {ENSEMBLE, *DEFAULT_MEMBERS.split(",")}


@pytest.mark.parametrize("name", member_names())
def test_every_member_name_builds_a_policy_of_that_name(name):
    policy = build_policy(PolicySpec(policy=name))
    assert policy.name == name
    assert pinnable_names(policy) == {name}


def test_ensemble_members_share_what_they_learn_and_ab_arms_do_not():
    shared = build_policy(PolicySpec(ensemble_members="ucb1,thompson,linucb,linear_thompson"))
    members = shared.members
    assert members["ucb1"].stats is members["thompson"].stats is members["linucb"].learned.stats
    assert members["linucb"].models is members["linear_thompson"].models
    split = build_policy(PolicySpec(policy=SPLIT, ab_split="ucb1:1,thompson:1"))
    assert isinstance(split, TrafficSplit)
    assert split.members["ucb1"].stats is not split.members["thompson"].stats


def test_the_split_takes_its_shares_from_ab_split():
    split = build_policy(PolicySpec(policy=SPLIT, ab_split="ucb1:3, linucb:1", split_salt="t"))
    users = [split.member_for(f"user-{n}") for n in range(4000)]
    assert users.count("ucb1") / len(users) == pytest.approx(0.75, abs=0.03)
    assert isinstance(split.members["linucb"], LinUCB)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (PolicySpec(policy="nope"), "unknown policy 'nope'"),
        (PolicySpec(ensemble_members="ucb1,nope"), "unknown policy 'nope'"),
        (PolicySpec(ensemble_members=" , "), "at least one member"),
        (PolicySpec(ensemble_members="ucb1,ucb1"), "named twice"),
        (PolicySpec(policy=SPLIT), "gives no traffic"),
        (PolicySpec(policy=SPLIT, ab_split="ucb1"), "not name:share"),
        (PolicySpec(policy=SPLIT, ab_split="ucb1:x"), "not name:share"),
        (PolicySpec(policy=SPLIT, ab_split="ucb1:-1"), "not name:share"),
        (PolicySpec(policy=SPLIT, ab_split="ucb1:1,ucb1:2"), "named twice"),
        (PolicySpec(policy=SPLIT, ab_split="ucb1:0"), "gives no traffic"),
        (PolicySpec(ensemble_exploration=0.0), "exploration"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        build_policy(spec)


def test_parsers_read_names_and_shares():
    assert parse_members(" ucb1, linucb ") == ["ucb1", "linucb"]
    assert parse_split("a:1,b:0.5") == {"a": 1.0, "b": 0.5}


def test_a_spec_reads_same_named_settings_and_defaults_the_rest():
    @dataclass
    class Settings:
        policy: str = "linucb"
        exploration: float = 0.2
        port: int = 50051

    spec = spec_from(Settings())
    assert (spec.policy, spec.exploration) == ("linucb", 0.2)
    assert spec.ensemble_members == DEFAULT_MEMBERS


def test_the_shared_linear_model_learns_from_slates_of_count_based_members():
    ensemble = build_policy(PolicySpec(ensemble_members="ucb1,linucb"))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    context = cosine_context("u", [f"i{n}" for n in range(20)], vectors, vectors[0], pinned="ucb1")
    slate = ensemble.rank(context, top_k=5)
    first = int(slate.indices[0])
    ensemble.update(ShownItem(f"i{first}", vectors[first], vectors[0], "ucb1", pinned=True), 1.0)
    model = ensemble.members["linucb"].models.model(16)
    assert not np.allclose(model.a_inv, np.eye(16))
    assert np.any(model.theta)


def test_members_with_other_item_statistics_count_every_slate_and_reward():
    ensemble = build_policy(PolicySpec(ensemble_members="thompson_discounted,linucb"))
    forgetting = ensemble.members["thompson_discounted"].stats
    plain = ensemble.members["linucb"].learned.stats
    assert forgetting is not plain
    ids = [f"i{n}" for n in range(10)]
    vectors = np.eye(10, 16, dtype=np.float32)
    for member, other in (("linucb", forgetting), ("thompson_discounted", plain)):
        context = cosine_context("u", ids, vectors, vectors[0], pinned=member)
        slate = ensemble.rank(context, top_k=3)
        first = int(slate.indices[0])
        shown = ShownItem(ids[first], vectors[first], vectors[0], member, pinned=True)
        shows_before, rewards_before = other.counts([ids[first]])
        ensemble.update(shown, 1.0)
        assert other.counts([ids[first]])[1] - rewards_before == pytest.approx(1.0)
        assert shows_before[0] >= 1.0  # the other member's slate was counted as shown


def test_contextual_members_on_other_statistics_keep_other_models_each_taught_by_every_slate():
    ensemble = build_policy(
        PolicySpec(ensemble_members="thompson_discounted,linucb,linucb_discounted")
    )
    members = ensemble.members
    assert members["linucb_discounted"].learned.stats is members["thompson_discounted"].stats
    assert members["linucb_discounted"].models is not members["linucb"].models
    ids = [f"i{n}" for n in range(10)]
    vectors = np.eye(10, 16, dtype=np.float32)
    context = cosine_context("u", ids, vectors, vectors[0], pinned="thompson_discounted")
    slate = ensemble.rank(context, top_k=3)
    shown_ids = [ids[i] for i in slate.indices]
    # Shown once, though both the forgetting statistics' owner and a model observer read them.
    assert members["thompson_discounted"].stats.counts(shown_ids)[0].tolist() == [1.0] * 3
    assert members["linucb"].learned.stats.counts(shown_ids)[0].tolist() == [1.0] * 3
    for name in ("linucb", "linucb_discounted"):
        assert not np.allclose(members[name].models.model(16).a_inv, np.eye(16))
