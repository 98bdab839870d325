import numpy as np

from ranker.interest import HistoryEvent, RecencyWeightedInterest
from ranker.v1 import ranker_pb2

DAY = 86400.0
A = np.array([1.0, 0.0], dtype=np.float32)
B = np.array([0.0, 1.0], dtype=np.float32)


def event(kind: int, time_s: float) -> HistoryEvent:
    return HistoryEvent("i", "t", kind, time_s)


def test_newer_behaviour_dominates():
    model = RecencyWeightedInterest(half_life_hours=24)
    view = ranker_pb2.EVENT_TYPE_VIEW
    events = [event(view, 0), event(view, 0), event(view, 3 * DAY)]
    interest = model.interest(events, np.stack([A, A, B]))
    assert interest @ B > interest @ A
    assert np.isclose(np.linalg.norm(interest), 1.0)


def test_purchase_outweighs_view_at_the_same_time():
    model = RecencyWeightedInterest(half_life_hours=24)
    events = [event(ranker_pb2.EVENT_TYPE_VIEW, 0), event(ranker_pb2.EVENT_TYPE_PURCHASE, 0)]
    interest = model.interest(events, np.stack([A, B]))
    assert interest @ B > interest @ A


def test_half_life_halves_the_weight():
    model = RecencyWeightedInterest(half_life_hours=1)
    view = ranker_pb2.EVENT_TYPE_VIEW
    weights = model.weights([event(view, 0), event(view, 3600)])
    np.testing.assert_allclose(weights, [0.5, 1.0])


def test_no_history_means_no_interest():
    model = RecencyWeightedInterest(half_life_hours=1)
    assert model.interest([], np.zeros((0, 2), dtype=np.float32)) is None
