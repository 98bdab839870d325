"""The served two-stream interest model: habits, the learned content prior, stored weights."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ranker.interest import HistoryEvent, default_interest_model
from ranker.interest.repeat import HABITS, habits
from ranker.interest.streams import (
    DISCOVERY_PARTS,
    REPEAT_PARTS,
    StreamWeights,
    TwoStreamInterest,
    content_parts,
    fitted_weights,
    stream_probability,
)
from ranker.settings import Settings
from ranker.v1 import ranker_pb2

DAY = 86400.0
DIMENSIONS = 384  # all-MiniLM-L6-v2, the default encoder the stored weights were fitted with


def unit_vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIMENSIONS)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def baskets(*contents: list[tuple[str, np.ndarray]]) -> tuple[list[HistoryEvent], np.ndarray]:
    """One purchase basket a week per argument, oldest first; returned newest first as the
    service passes them."""
    taken = [
        (item, week * 7 * DAY, vector)
        for week, basket in enumerate(contents)
        for item, vector in basket
    ]
    taken.sort(key=lambda t: -t[1])
    events = [HistoryEvent(item, "t", ranker_pb2.EVENT_TYPE_PURCHASE, t) for item, t, _ in taken]
    return events, np.stack([vector for _, _, vector in taken])


def near(vector: np.ndarray, seed: int) -> np.ndarray:
    """A vector with cosine about 0.95 to `vector`: a close new item."""
    mixed = 0.95 * vector + 0.31 * unit_vector(seed)
    return (mixed / np.linalg.norm(mixed)).astype(np.float32)


def test_habits_count_repeats_after_the_first_basket() -> None:
    # Items x baskets: "a" in all three baskets, "b" in the first, "c" and "d" in the last.
    presence = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 1]], dtype=np.float64)
    found = habits(presence)
    # After the first basket: four items taken, two of them ("a" twice) repeats.
    assert found["repeat_share"] == pytest.approx((2 + 1) / (4 + 2))
    assert found["baskets"] == pytest.approx(np.log(3))
    assert found["basket_size"] == pytest.approx(np.log(6 / 3))
    assert found["variety"] == pytest.approx(np.log(4))


def test_a_customer_who_never_repeats_gets_close_new_items_above_old_ones() -> None:
    explorer = [
        [(f"w{week}-{n}", unit_vector(10 * week + n)) for n in range(4)] for week in range(8)
    ]
    events, vectors = baskets(*explorer)
    latest = explorer[-1][0][1]
    scores = (
        default_interest_model(Settings())
        .profile(events, vectors)
        .relevance(["w3-0", "close new"], np.stack([explorer[3][0][1], near(latest, 99)]))
    )
    assert scores[1] > scores[0]


def test_a_heavy_re_buyer_gets_old_items_first() -> None:
    staples = [(f"staple{n}", unit_vector(n)) for n in range(4)]
    events, vectors = baskets(*[staples] * 8)
    scores = (
        default_interest_model(Settings())
        .profile(events, vectors)
        .relevance(["close new", "staple2"], np.stack([near(staples[2][1], 99), staples[2][1]]))
    )
    assert scores[1] > scores[0]


def test_the_same_old_item_ranks_higher_for_a_re_buyer_than_for_an_explorer() -> None:
    """The habits move old items against new ones per customer, not one fixed boost for all:
    the lamp is taken in the same baskets by both; only what else they take differs."""
    lamp = ("lamp", unit_vector(1))

    def history(other: list[list[tuple[str, np.ndarray]]]) -> tuple[list, np.ndarray]:
        return baskets(
            *[[lamp, *items] if week in (0, 7) else items for week, items in enumerate(other)]
        )

    rebuyer = history([[("mug", unit_vector(2)), ("cup", unit_vector(3))]] * 8)
    explorer = history(
        [[(f"w{week}-{n}", unit_vector(10 + 10 * week + n)) for n in range(2)] for week in range(8)]
    )
    model = default_interest_model(Settings())
    candidates = np.stack([lamp[1], near(lamp[1], 99)])
    gaps = {}
    for name, (events, vectors) in (("rebuyer", rebuyer), ("explorer", explorer)):
        profile = model.profile(events, vectors)
        old, new = profile.relevance(["lamp", "close new"], candidates)
        gaps[name] = (profile.evolving.repeats.habits["repeat_share"], old - new)
    assert gaps["rebuyer"][0] > gaps["explorer"][0]
    assert gaps["rebuyer"][1] > gaps["explorer"][1]


def test_the_content_prior_lifts_what_it_learned_and_ignores_other_encoders() -> None:
    along = np.zeros(DIMENSIONS, dtype=np.float32)
    along[0] = 1.0
    weights = replace(
        fitted_weights(),
        repeat_content=(0.0,) * DIMENSIONS,
        discovery_content=(2.0,) + (0.0,) * (DIMENSIONS - 1),
    )
    parts = content_parts(np.stack([along, -along]), weights)
    np.testing.assert_allclose(parts["discovery_content"], [2.0, -2.0])
    np.testing.assert_array_equal(parts["repeat_content"], [0.0, 0.0])
    other_encoder = content_parts(np.ones((3, 8), dtype=np.float32), weights)
    np.testing.assert_array_equal(other_encoder["discovery_content"], np.zeros(3))


def test_the_content_prior_applies_to_the_encoder_it_was_fitted_with_only() -> None:
    staples = [(f"staple{n}", unit_vector(n)) for n in range(3)]
    events, vectors = baskets(*[staples] * 2)
    along = unit_vector(9)
    weights = replace(
        fitted_weights(), discovery_content=tuple((4.0 * along).tolist()), encoder="abc"
    )
    model = TwoStreamInterest(weights)
    without_prior = TwoStreamInterest(replace(weights, repeat_content=(), discovery_content=()))
    candidates = np.stack([along, -along])
    fitted = model.profile(events, vectors, encoder="abc").relevance(["a", "b"], candidates)
    assert fitted[0] > fitted[1]
    plain = without_prior.profile(events, vectors, encoder="abc").relevance(["a", "b"], candidates)
    for encoder in ("another", ""):
        other = model.profile(events, vectors, encoder=encoder).relevance(["a", "b"], candidates)
        np.testing.assert_array_equal(other, plain)


def test_relevance_is_a_probability_and_independent_of_candidate_order() -> None:
    staples = [(f"staple{n}", unit_vector(n)) for n in range(3)]
    events, vectors = baskets(*[staples] * 4, [("new", unit_vector(7))])
    profile = TwoStreamInterest().profile(events, vectors)
    ids = ["staple0", "new", "never", "staple2"]
    candidates = np.stack([staples[0][1], unit_vector(7), unit_vector(8), staples[2][1]])
    forward = profile.relevance(ids, candidates)
    order = [3, 1, 0, 2]
    shuffled = profile.relevance([ids[i] for i in order], candidates[order])
    np.testing.assert_allclose(shuffled, forward[order])
    assert ((forward > 0.0) & (forward < 1.0)).all()


def test_serving_scores_exactly_what_the_weights_were_fitted_on() -> None:
    # Fitting reads `parts`, a row per candidate with the habits repeated; serving reads each
    # habit once. The two must give the same bits, or the fitted weights serve another model.
    staples = [(f"staple{n}", unit_vector(n)) for n in range(3)]
    events, vectors = baskets(*[staples] * 3, [("new", unit_vector(7)), staples[0]])
    profile = TwoStreamInterest().profile(events, vectors)
    ids = ["staple0", "new", "never", "staple2"]
    candidates = np.stack([staples[0][1], unit_vector(7), unit_vector(8), staples[2][1]])
    fitted_on = profile.evolving.parts(ids, candidates) | content_parts(candidates, profile.weights)
    assert all(np.shape(fitted_on[name]) == (len(ids),) for name in HABITS)
    np.testing.assert_array_equal(
        profile.relevance(ids, candidates), stream_probability(fitted_on, profile.weights)
    )


def test_the_stored_weights_fit_the_default_encoder_and_these_parts() -> None:
    weights = fitted_weights()
    assert len(weights.repeat) == 1 + len(REPEAT_PARTS)
    assert len(weights.discovery) == 1 + len(DISCOVERY_PARTS)
    assert len(weights.repeat_content) == len(weights.discovery_content) == DIMENSIONS
    assert set(HABITS) <= set(REPEAT_PARTS) & set(DISCOVERY_PARTS)


def test_weights_round_trip_and_refuse_other_parts(tmp_path: Path) -> None:
    weights = StreamWeights(
        (0.5, *[0.25] * len(REPEAT_PARTS)),
        (-1.0, *[2.0] * len(DISCOVERY_PARTS)),
        (0.125, -0.125),
        (0.0, 1.0),
        0.75,
        "abc",
    )
    path = tmp_path / "weights.json"
    weights.save(path, "test")
    assert StreamWeights.load(path) == weights
    path.write_text(path.read_text().replace('"interest"', '"other"'))
    with pytest.raises(ValueError, match="other parts"):
        StreamWeights.load(path)
