from dataclasses import replace

import numpy as np
import pytest

from ranker.interest import (
    EVENT_WEIGHTS,
    EvolvingInterest,
    EvolvingInterestParams,
    HistoryEvent,
    RecencyWeightedInterest,
    default_interest_model,
)
from ranker.interest.base import history_columns
from ranker.interest.similarity import history_items
from ranker.interest.streams import TwoStreamInterest, fitted_weights
from ranker.settings import Settings
from ranker.v1 import ranker_pb2

DAY = 86400.0
A = np.array([1.0, 0.0], dtype=np.float32)
B = np.array([0.0, 1.0], dtype=np.float32)
NO_CONTENT = np.zeros(2, dtype=np.float32)
PURCHASE = ranker_pb2.EVENT_TYPE_PURCHASE
VIEW = ranker_pb2.EVENT_TYPE_VIEW


def event(kind: int, time_s: float, item_id: str = "i") -> HistoryEvent:
    return HistoryEvent(item_id, "t", kind, time_s)


def history(*taken: tuple[str, float, np.ndarray]) -> tuple[list[HistoryEvent], np.ndarray]:
    """Purchases of (item id, day, vector), returned newest first as the service passes them."""
    ordered = sorted(taken, key=lambda t: -t[1])
    events = [event(PURCHASE, day * DAY, item) for item, day, _ in ordered]
    return events, np.stack([vector for _, _, vector in ordered])


def test_newer_behaviour_dominates():
    model = RecencyWeightedInterest(half_life_hours=24)
    events = [event(VIEW, 0), event(VIEW, 0), event(VIEW, 3 * DAY)]
    interest = model.interest(events, np.stack([A, A, B]))
    assert interest @ B > interest @ A
    assert np.isclose(np.linalg.norm(interest), 1.0)


def test_purchase_outweighs_view_at_the_same_time():
    model = RecencyWeightedInterest(half_life_hours=24)
    events = [event(VIEW, 0), event(PURCHASE, 0)]
    interest = model.interest(events, np.stack([A, B]))
    assert interest @ B > interest @ A


def test_half_life_halves_the_weight():
    model = RecencyWeightedInterest(half_life_hours=1)
    weights = model.weights([event(VIEW, 0), event(VIEW, 3600)])
    np.testing.assert_allclose(weights, [0.5, 1.0])


def test_no_history_means_no_interest():
    model = RecencyWeightedInterest(half_life_hours=1)
    assert model.interest([], np.zeros((0, 2), dtype=np.float32)) is None


def test_items_taken_more_often_rank_higher():
    events, vectors = history(
        ("often", 1, A), ("often", 2, A), ("often", 3, A), ("once", 3, A), ("other", 4, B)
    )
    scores = (
        EvolvingInterest()
        .profile(events, vectors)
        .relevance(["never", "once", "often"], np.stack([A, A, A]))
    )
    assert scores[2] > scores[1] > scores[0]


def test_items_taken_more_recently_rank_higher():
    events, vectors = history(("old", 1, A), ("old", 2, A), ("new", 60, A), ("new", 61, A))
    scores = EvolvingInterest().profile(events, vectors).relevance(["old", "new"], np.stack([A, A]))
    assert scores[1] > scores[0]


def test_a_purchase_counts_more_than_a_view_of_the_same_item():
    events = [event(PURCHASE, DAY, "bought"), event(VIEW, DAY, "viewed")]
    scores = (
        EvolvingInterest()
        .profile(events, np.stack([A, A]))
        .relevance(["viewed", "bought"], np.stack([A, A]))
    )
    assert scores[1] > scores[0] > 0.0


def test_repeats_and_new_items_share_one_scale():
    events, vectors = history(("lamp", 1, A), ("mug", 2, B))
    scores = (
        EvolvingInterest()
        .profile(events, vectors)
        .relevance(["unrelated", "like a lamp", "lamp"], np.stack([-A, A, A]))
    )
    # An item the user took is the strongest signal; among new items the similar one leads.
    assert scores[2] > scores[1] > scores[0]


def test_a_candidate_is_not_similar_to_itself_by_text():
    events, vectors = history(("lamp", 1, A))
    parts = EvolvingInterest().profile(events, vectors).parts(["lamp", "new"], np.stack([A, A]))
    assert parts["similarity"][0] == 0.0
    assert parts["similarity"][1] == pytest.approx(1.0)


def test_candidates_without_content_keep_their_repeat_score():
    events, vectors = history(("lamp", 1, A), ("lamp", 5, A), ("mug", 6, B))
    profile = EvolvingInterest().profile(events, vectors)
    scores = profile.relevance(["lamp", "unknown"], np.stack([NO_CONTENT, NO_CONTENT]))
    assert scores[0] > 0.0
    assert scores[1] == 0.0


def shifted(days_after_shift: int) -> tuple[list[HistoryEvent], np.ndarray]:
    """A year of weekly purchases along A, then daily ones along B for a few days."""
    before = [(f"a{week}", week * 7.0, A) for week in range(52)]
    after = [(f"b{day}", 365.0 + day, B) for day in range(days_after_shift)]
    return history(*before, *after)


def test_short_term_interest_moves_faster_than_long_term_after_a_shift():
    profile = EvolvingInterest().profile(*shifted(days_after_shift=5))
    assert profile.short_term @ B > profile.long_term @ B
    assert profile.long_term @ A > profile.short_term @ A


def test_drift_grows_after_a_shift_and_the_vector_follows_it():
    model = EvolvingInterest()
    steady = model.profile(*shifted(days_after_shift=0))
    moved = model.profile(*shifted(days_after_shift=5))
    assert steady.drift == pytest.approx(0.0, abs=1e-6)
    assert moved.drift > 0.2
    assert moved.vector @ B > steady.vector @ B
    assert np.isclose(np.linalg.norm(moved.vector), 1.0)


def test_no_history_means_no_vector_and_zero_relevance():
    profile = EvolvingInterest().profile([], np.zeros((0, 2), dtype=np.float32))
    assert profile.vector is None
    assert profile.drift == 0.0
    scores = profile.relevance(["a", "b"], np.stack([A, B]))
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(scores, [0.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_relevance_is_float64_per_candidate_for_any_input_size(dtype: type) -> None:
    events, vectors = history(("lamp", 1, A), ("mug", 2, B))
    profile = EvolvingInterest().profile(events, vectors.astype(dtype))
    empty = profile.relevance([], np.zeros((0, 2), dtype=dtype))
    assert empty.shape == (0,) and empty.dtype == np.float64
    scores = profile.relevance(["lamp", "x", "y"], np.stack([A, B, NO_CONTENT]).astype(dtype))
    assert scores.shape == (3,) and scores.dtype == np.float64
    assert np.isfinite(scores).all()


def test_settings_reach_the_served_model():
    settings = Settings(
        half_life_hours=10.0, long_half_life_hours=500.0, repeat_half_life_hours=100.0
    )
    params = default_interest_model(settings).params
    assert params.short_half_life_hours == 10.0
    assert params.long_half_life_hours == 500.0
    assert params.repeat_half_life_hours == 100.0
    assert params.similarity_weight == EvolvingInterestParams().similarity_weight


def test_similarity_keeps_the_heaviest_history_items():
    ids = ["old", "new", "new", "mid"]
    events = [HistoryEvent(i, i, ranker_pb2.EVENT_TYPE_VIEW, 0.0) for i in ids]
    items = history_items(
        history_columns(events, EVENT_WEIGHTS),
        np.stack([A, B, B, -A]),
        np.array([0.1, 1.0, 1.0, 0.5]),
        limit=2,
    )
    assert set(items.index) == {"new", "mid"}
    np.testing.assert_allclose(items.weights[items.index["new"]], 2.0)
    np.testing.assert_array_equal(items.vectors[items.index["mid"]], -A)


def weekly_buyer() -> tuple[list[HistoryEvent], np.ndarray]:
    """Twelve weekly baskets: "staple" in every one, "once" only in the first, and a lamp-like
    taste along A."""
    staples = [("staple", 7.0 * week, A) for week in range(12)]
    return history(*staples, ("once", 0.0, B), ("lamp", 77.0, A))


def test_two_streams_put_a_strong_repeat_above_a_close_new_item():
    events, vectors = weekly_buyer()
    scores = (
        TwoStreamInterest()
        .profile(events, vectors)
        .relevance(["like a lamp", "staple"], np.stack([A, A]))
    )
    assert scores[1] > scores[0]


def test_two_streams_put_a_close_new_item_above_a_weak_old_one():
    events, vectors = weekly_buyer()
    scores = (
        TwoStreamInterest()
        .profile(events, vectors)
        .relevance(["once", "like a lamp", "unrelated"], np.stack([B, A, -A]))
    )
    assert scores[1] > scores[0] > scores[2]
    assert ((scores >= 0.0) & (scores <= 1.0)).all()


def test_two_streams_do_not_depend_on_candidate_order():
    events, vectors = weekly_buyer()
    profile = TwoStreamInterest().profile(events, vectors)
    ids = ["once", "like a lamp", "staple", "unrelated"]
    candidates = np.stack([B, A, A, -A])
    order = [2, 0, 3, 1]
    forward = profile.relevance(ids, candidates)
    shuffled = profile.relevance([ids[i] for i in order], candidates[order])
    np.testing.assert_allclose(shuffled, forward[order])


def test_discovery_shift_lifts_new_items_only():
    events, vectors = weekly_buyer()
    ids, candidates = ["staple", "like a lamp"], np.stack([A, A])
    plain = TwoStreamInterest().profile(events, vectors).relevance(ids, candidates)
    lifted = (
        TwoStreamInterest(replace(fitted_weights(), discovery_shift=3.0))
        .profile(events, vectors)
        .relevance(ids, candidates)
    )
    assert lifted[0] == plain[0]
    assert lifted[1] > plain[1]


def test_two_streams_keep_the_evolving_profile():
    events, vectors = shifted(days_after_shift=5)
    two = TwoStreamInterest().profile(events, vectors)
    evolving = EvolvingInterest().profile(events, vectors)
    np.testing.assert_array_equal(two.vector, evolving.vector)
    assert two.evolving.drift == evolving.drift


def test_the_largest_reward_lift_keeps_a_new_item_below_a_purchased_one():
    """The documented scale: purchases above 0.97, new items within +-0.03, lifts up to 0.9."""
    events, vectors = weekly_buyer()
    scores = (
        EvolvingInterest()
        .profile(events, vectors)
        .relevance(["once", "like a lamp"], np.stack([B, A]))
    )
    assert scores[0] - scores[1] > 0.9


def test_new_clicks_outrank_older_purchases_among_new_items():
    """The product's promise: hours after the user turned to B, new B items come first, even
    though their older A purchases weigh more by event type and match A items more closely."""
    close_to_a = np.array([0.95, 0.31], dtype=np.float32)
    close_to_b = np.array([0.40, 0.92], dtype=np.float32)
    clicks = [HistoryEvent(f"b{n}", "t", ranker_pb2.EVENT_TYPE_CLICK, 10 * DAY) for n in range(4)]
    purchases = [HistoryEvent(f"a{n}", "t", PURCHASE, 0.0) for n in range(4)]
    vectors = np.stack([B] * 4 + [A] * 4)
    profile = default_interest_model(Settings()).profile(clicks + purchases, vectors)
    relevance = profile.relevance(["new-a", "new-b"], np.stack([close_to_a, close_to_b]))
    assert relevance[1] > relevance[0]
