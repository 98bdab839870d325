import numpy as np

from ranker.bandits.base import RankContext
from ranker.bandits.item_stats import InMemoryItemStats
from ranker.bandits.similarity_ucb import SimilarityUCB


def context(interest=(1.0, 0.0)) -> RankContext:
    vectors = np.array([[1.0, 0.0], [0.9, 0.436], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    return RankContext(
        user_id="u",
        item_ids=["a", "b", "c", "d"],
        vectors=vectors,
        interest=None if interest is None else np.array(interest, dtype=np.float32),
    )


def test_cold_items_rank_by_similarity():
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=0.0, feedback_weight=1.0)
    slate = policy.rank(context(), top_k=3)
    assert slate.indices.tolist() == [0, 1, 2]
    assert np.all(np.diff(slate.scores) <= 0)
    assert slate.propensities.tolist() == [1.0, 1.0, 1.0]
    assert not slate.explored.any()


def test_rewards_lift_an_item_past_a_more_similar_one():
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=0.0, feedback_weight=1.0)
    for _ in range(5):
        slate = policy.rank(context(), top_k=4)
        policy.update("c", 1.0)
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
