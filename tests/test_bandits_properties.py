"""Properties every servable policy keeps, the meta-policies included, on generated traffic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ranker.bandits.base import Policy, RankContext, ShownItem, Slate, cosine_context
from ranker.bandits.registry import (
    ENSEMBLE,
    SPLIT,
    PolicySpec,
    build_policy,
    member_names,
    pinnable_names,
)

POLICIES = [*member_names(), ENSEMBLE, SPLIT]
SPLIT_SHARES = "ucb1:1,thompson:1,linucb:1,softmax:0.5"
# Count-based and contextual members on two kinds of item statistics, so two linear models.
ENSEMBLE_MEMBERS = "thompson,linucb,linear_thompson_discounted"
# No example database: nothing is written into the checkout.
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, database=None)


def build(name: str, seed: int) -> Policy:
    # Small stores, so that eviction is exercised too.
    return build_policy(
        PolicySpec(
            policy=name,
            ensemble_members=ENSEMBLE_MEMBERS,
            ab_split=SPLIT_SHARES,
            seed=seed,
            known_items=30,
        )
    )


@st.composite
def traffic(draw: st.DrawFn) -> list[tuple[RankContext, int, list[float]]]:
    """A few requests: candidates (some repeated across requests), a top_k, rewards per slot."""
    dim = draw(st.sampled_from([1, 8, 24]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    catalogue = rng.standard_normal((40, dim)).astype(np.float32)
    catalogue /= np.linalg.norm(catalogue, axis=1, keepdims=True)
    requests = []
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 30))
        chosen = rng.choice(40, size=n, replace=False)
        interest = None
        if draw(st.booleans()):
            interest = catalogue[rng.integers(40)]
        context = cosine_context(
            f"user-{draw(st.integers(0, 3))}",
            [f"item-{i}" for i in chosen],
            catalogue[chosen],
            interest,
        )
        top_k = draw(st.integers(1, 12))
        rewards = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=12, max_size=12))
        requests.append((context, top_k, rewards))
    return requests


def shown(context: RankContext, slate: Slate, slot: int, member: str = "") -> ShownItem:
    index = int(slate.indices[slot])
    return ShownItem(
        context.item_ids[index],
        context.vectors[index],
        context.interest,
        member or slate.policy,
        slate.pinned,
    )


def serve(policy: Policy, requests: list[tuple[RankContext, int, list[float]]]) -> list[Slate]:
    slates = []
    for context, top_k, rewards in requests:
        slate = policy.rank(context, top_k)
        slates.append(slate)
        for slot in range(len(slate.indices)):
            if rewards[slot]:
                policy.update(shown(context, slate, slot), rewards[slot])
    return slates


@pytest.mark.parametrize("name", POLICIES)
@PROPERTY_SETTINGS
@given(requests=traffic(), seed=st.integers(0, 1000))
def test_slates_are_valid(name, requests, seed):
    policy = build(name, seed)
    for (context, top_k, _), slate in zip(requests, serve(policy, requests), strict=True):
        n = len(context.item_ids)
        assert len(slate.indices) == min(top_k, n)
        assert len(set(slate.indices.tolist())) == len(slate.indices)
        assert np.all((slate.indices >= 0) & (slate.indices < n))
        assert np.all((slate.propensities > 0.0) & (slate.propensities <= 1.0))
        assert len(slate.scores) == len(slate.explored) == len(slate.indices)
        assert slate.policy in pinnable_names(policy)


@pytest.mark.parametrize("name", POLICIES)
@PROPERTY_SETTINGS
@given(requests=traffic(), seed=st.integers(0, 1000))
def test_same_seed_same_calls_same_slates(name, requests, seed):
    first, second = serve(build(name, seed), requests), serve(build(name, seed), requests)
    for a, b in zip(first, second, strict=True):
        assert a.policy == b.policy
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.propensities, b.propensities)
        np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("name", POLICIES)
@PROPERTY_SETTINGS
@given(
    requests=traffic(),
    reward=st.one_of(
        st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9), st.just(math.nan)
    ),
)
def test_feedback_no_slate_of_this_policy_earned_is_refused(name, requests, reward):
    policy = build(name, 0)
    context, top_k, _ = requests[0]
    slate = policy.rank(context, top_k)
    with pytest.raises(ValueError, match="not by"):
        policy.update(shown(context, slate, 0, member="no-such-policy"), 1.0)
    with pytest.raises(ValueError, match="reward"):
        policy.update(shown(context, slate, 0), reward)
    # The refused feedback changed nothing: the slate that follows is the fresh twin's.
    twin = build(name, 0)
    twin.rank(context, top_k)
    np.testing.assert_array_equal(
        policy.rank(context, top_k).indices, twin.rank(context, top_k).indices
    )


@pytest.mark.parametrize("name", [ENSEMBLE, SPLIT])
@PROPERTY_SETTINGS
@given(requests=traffic(), member=st.sampled_from(["thompson", "linucb"]))
def test_a_pinned_member_produces_every_slate(name, requests, member):
    policy = build(name, 0)
    for context, top_k, _ in requests:
        pinned = RankContext(
            context.user_id,
            context.item_ids,
            context.vectors,
            context.interest,
            context.relevance,
            member,
        )
        slate = policy.rank(pinned, top_k)
        assert (slate.policy, slate.pinned) == (member, True)
        policy.update(shown(pinned, slate, 0), 1.0)
