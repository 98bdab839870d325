"""The default policy (SimilarityUCB / UCB1) and the item statistics count-based policies share."""

import numpy as np

from ranker.bandits.base import (
    PARTIAL_SORT_FROM,
    RankContext,
    ShownItem,
    cosine_context,
    explored_mask,
    top_k_order,
)
from ranker.bandits.item_stats import InMemoryItemStats
from ranker.bandits.similarity_ucb import SimilarityUCB
from ranker.bandits.sliding_window_stats import SlidingWindowItemStats


def context(interest=(1.0, 0.0)) -> RankContext:
    vectors = np.array([[1.0, 0.0], [0.9, 0.436], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    return cosine_context(
        user_id="u",
        item_ids=["a", "b", "c", "d"],
        vectors=vectors,
        interest=None if interest is None else np.array(interest, dtype=np.float32),
    )


def shown(item_id: str) -> ShownItem:
    ctx = context()
    vector = ctx.vectors[list(ctx.item_ids).index(item_id)]
    return ShownItem(item_id, vector, ctx.interest, "similarity_ucb")


def test_cold_items_rank_by_similarity():
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=0.0, feedback_weight=1.0)
    slate = policy.rank(context(), top_k=3)
    assert slate.indices.tolist() == [0, 1, 2]
    assert np.all(np.diff(slate.scores) <= 0)
    assert slate.propensities.tolist() == [1.0, 1.0, 1.0]
    assert not slate.explored.any()
    assert slate.policy == "similarity_ucb"


def test_rewards_lift_an_item_past_a_more_similar_one():
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=0.0, feedback_weight=1.0)
    for _ in range(5):
        slate = policy.rank(context(), top_k=4)
        policy.update(shown("c"), 1.0)
    assert slate.indices.tolist().index(2) < 2


def test_exploration_shows_an_unshown_item_and_says_so():
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=2.0, feedback_weight=1.0)
    for _ in range(3):
        policy.rank(context(), top_k=2)
    slate = policy.rank(context(), top_k=2)
    assert set(slate.indices.tolist()) & {2, 3}
    assert slate.explored.any()


def test_no_interest_keeps_candidate_order():
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=0.0, feedback_weight=1.0)
    assert policy.rank(context(interest=None), top_k=4).indices.tolist() == [0, 1, 2, 3]


def test_item_stats_are_bounded():
    stats = InMemoryItemStats(capacity=2)
    stats.record_shows(["a", "b", "c"])
    shows, _ = stats.counts(["a", "b", "c"])
    assert shows.tolist() == [0.0, 1.0, 1.0]
    assert stats.total_shows == 3


def test_an_evicted_slot_starts_from_zero_for_its_new_item():
    stats = InMemoryItemStats(capacity=1)
    stats.record_shows(["a"])
    stats.record_reward("a", 1.0)
    stats.record_shows(["b"])
    assert [c.tolist() for c in stats.counts(["a", "b"])] == [[0.0, 1.0], [0.0, 0.0]]


def test_discounted_stats_forget_geometrically_per_slate():
    stats = InMemoryItemStats(capacity=10, discount=0.5)
    stats.record_shows(["a"])
    stats.record_reward("a", 1.0)
    stats.record_shows(["b"])
    stats.record_shows(["b"])
    shows, rewards = stats.counts(["a", "b"])
    np.testing.assert_allclose(shows, [0.25, 1.5])
    np.testing.assert_allclose(rewards, [0.25, 0.0])
    assert stats.total_shows == 1.75


def test_sliding_window_stats_count_only_recent_slates():
    stats = SlidingWindowItemStats(window=2)
    stats.record_shows(["a", "b"])
    stats.record_reward("a", 1.0)
    stats.record_shows(["b"])
    assert [c.tolist() for c in stats.counts(["a", "b", "z"])] == [[1, 2, 0], [1, 0, 0]]
    stats.record_shows(["b"])
    assert [c.tolist() for c in stats.counts(["a", "b"])] == [[0, 2], [0, 0]]
    assert stats.total_shows == 2


def test_top_k_order_breaks_ties_by_candidate_order():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.5, 0.2])
    assert top_k_order(scores, 3).tolist() == [3, 1, 2]
    assert top_k_order(scores, 2).tolist() == [3, 1]
    assert top_k_order(scores, 10).tolist() == [3, 1, 2, 4, 5, 0]


def test_partial_and_whole_sorts_agree_on_slates_and_exploration():
    rng = np.random.default_rng(0)
    for n in (PARTIAL_SORT_FROM - 1, PARTIAL_SORT_FROM, 1000):
        # Few distinct values, so ties fall at the cut.
        scores = rng.integers(0, 20, n) / 20.0
        exploit = rng.integers(0, 20, n) / 20.0
        for top_k in (1, 10, 50):
            whole = (-scores).argsort(kind="stable")[:top_k]
            assert top_k_order(scores, top_k).tolist() == whole.tolist()
            greedy = set((-exploit).argsort(kind="stable")[:top_k].tolist())
            expected = [index not in greedy for index in whole.tolist()]
            assert explored_mask(whole, exploit, top_k).tolist() == expected
