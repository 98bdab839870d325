"""The ranking path with a fake encoder: validation, feedback bookkeeping and failure mapping."""

import asyncio
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest

from ranker.bandits.item_stats import InMemoryItemStats
from ranker.bandits.registry import build_policy, pinnable_names, spec_from
from ranker.bandits.similarity_ucb import SimilarityUCB
from ranker.budget import HighWaterMark, LoopLag
from ranker.embeddings import ENCODER_TIMEOUT, ENCODER_UNAVAILABLE, Embeddings
from ranker.interest import RecencyWeightedInterest, default_interest_model
from ranker.known_items import load_catalogue
from ranker.service import RankingService, RequestFailed
from ranker.settings import Settings
from ranker.v1 import ranker_pb2 as pb


class FakeEmbedder:
    """Embeds a text as a fixed random unit vector per first word, so related texts are close;
    texts listed in `unavailable` come back missing, as when Triton is down or late."""

    def __init__(self, unavailable: set[str] = frozenset(), failure: str = ENCODER_TIMEOUT):
        self.unavailable = unavailable
        self.failure = failure
        self.calls: list[list[str]] = []

    async def embed(self, texts, deadline):
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            seed = sum(ord(c) for c in text.split()[0])
            rows.append(np.random.default_rng(seed).normal(size=8))
        vectors = np.array(rows, dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        missing = np.array([text in self.unavailable for text in texts])
        vectors[missing] = 0.0
        return Embeddings("fake:1", vectors, missing, self.failure if missing.any() else None)


def service(embedder=None, **overrides) -> RankingService:
    settings = Settings(exploration=0.0, **overrides)
    policy = SimilarityUCB(InMemoryItemStats(100), exploration=0.0, feedback_weight=1.0)
    return RankingService(
        settings, embedder or FakeEmbedder(), RecencyWeightedInterest(72.0), policy
    )


def item(item_id: str, text: str = "") -> pb.Item:
    return pb.Item(item_id=item_id, text=text)


def event(item_id: str, text: str, seconds: int = 1_700_000_000) -> pb.BehaviorEvent:
    e = pb.BehaviorEvent(item=item(item_id, text), type=pb.EVENT_TYPE_PURCHASE)
    e.time.seconds = seconds
    return e


def request(**fields) -> pb.RankRequest:
    defaults = {
        "user_id": "u1",
        "history": [event("h1", "candle holder")],
        "candidates": [item("c1", "candle white"), item("c2", "baking tin")],
    }
    return pb.RankRequest(**{**defaults, **fields})


def rank(svc: RankingService, req: pb.RankRequest) -> pb.RankResponse:
    return asyncio.run(svc.rank(req, time_left_s=None))


def failure(svc, req) -> RequestFailed:
    return failure_with_deadline(svc, req, time_left_s=None)


def failure_with_deadline(svc, req, time_left_s: float | None) -> RequestFailed:
    with pytest.raises(RequestFailed) as caught:
        asyncio.run(svc.rank(req, time_left_s))
    return caught.value


def test_ranks_the_candidate_that_matches_the_history_first():
    response = rank(service(), request())
    assert [i.item_id for i in response.items] == ["c1", "c2"]
    assert response.policy == "similarity_ucb"
    assert response.model_version == "fake:1"
    assert response.event_id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"candidates": []}, "candidates: at least one candidate is required"),
        ({"candidates": [item("c1", "a"), item("c1", "b")]}, "candidates[1].item_id: duplicate"),
        ({"candidates": [item("new")]}, "candidates[0].text: empty"),
        ({"candidates": [item("", "text")]}, "candidates[0].item_id: must not be empty"),
        ({"top_k": 101}, "top_k: 101 is over the limit of 100"),
        ({"budget_ms": 60_001}, "budget_ms"),
        ({"candidates": [item(f"c{i}", "t") for i in range(1001)]}, "candidates: 1001 entries"),
        ({"history": [event("h", "t")] * 501}, "history: 501 entries"),
        ({"candidates": [item("c", "x" * 1001)]}, "candidates[0].text: 1001 characters"),
        ({"user_id": "u" * 257}, "user_id: 257 characters"),
        ({"history": [pb.BehaviorEvent(item=item("h", "t"))]}, "history[0].time: a timestamp"),
        ({"policy": "nope"}, "policy: unknown policy 'nope'; this server has ['similarity_ucb']"),
    ],
)
def test_bad_requests_name_the_field(fields, message):
    error = failure(service(), request(**fields))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.message


def test_a_budget_over_the_limit_is_invalid_also_with_a_short_deadline():
    error = failure_with_deadline(service(), request(budget_ms=60_001), time_left_s=1.0)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "budget_ms: 60001 is over the limit" in error.message


def test_an_event_at_the_epoch_has_a_time():
    """A set time of 0 reads as an unset one; only the unset one is refused."""
    assert rank(service(), request(history=[event("h1", "candle holder", seconds=0)])).items


def test_unknown_event_type_is_refused():
    bad = event("h", "t")
    bad.type = 42
    error = failure(service(), request(history=[bad]))
    assert error.message == "history[0].type: unknown event type 42"


def test_items_seen_with_text_may_come_back_by_id_alone():
    svc = service()
    rank(svc, request())
    response = rank(svc, request(candidates=[item("c1"), item("h1")]))
    assert {i.item_id for i in response.items} == {"c1", "h1"}


def test_a_text_anywhere_in_the_request_resolves_the_id():
    response = rank(service(), request(candidates=[item("h1")]))
    assert [i.item_id for i in response.items] == ["h1"]


def test_a_rejected_request_remembers_nothing():
    svc = service()
    failure(svc, request(candidates=[item("c9", "candle"), item("c9", "again")]))
    assert failure(svc, request(candidates=[item("c9")])).code == grpc.StatusCode.INVALID_ARGUMENT


def test_top_k_bounds_the_slate():
    response = rank(service(), request(top_k=1))
    assert len(response.items) == 1


def test_encoder_down_still_answers_from_the_prior_and_says_so():
    embedder = FakeEmbedder(
        unavailable={"candle holder", "candle white", "baking tin"}, failure=ENCODER_UNAVAILABLE
    )
    response = rank(service(embedder), request())
    assert [i.item_id for i in response.items] == ["c1", "c2"]
    assert list(response.degraded) == [
        "encoder_unavailable",
        "candidates_without_content",
        "history_partial",
    ]


def test_missing_history_is_dropped_and_candidates_keep_their_content():
    embedder = FakeEmbedder(unavailable={"baking tin old"})
    req = request(
        history=[event("h1", "candle holder", 2_000), event("h2", "baking tin old", 1_000)],
        candidates=[item("c2", "baking tin"), item("c1", "candle white")],
    )
    response = rank(service(embedder), req)
    assert [i.item_id for i in response.items] == ["c1", "c2"]
    assert list(response.degraded) == ["encoder_timeout", "history_partial"]


def test_candidates_then_newest_history_are_embedded_first():
    embedder = FakeEmbedder()
    req = request(
        history=[event("old", "old text", 1_000), event("new", "new text", 2_000)],
        candidates=[item("c1", "candle white")],
    )
    rank(service(embedder), req)
    assert embedder.calls == [["candle white", "new text", "old text"]]


def test_stage_times_are_reported():
    response = rank(service(), request())
    stages = {"validate", "embed", "interest", "policy", "serialize", "total"}
    assert set(response.stage_ms) == stages
    assert response.stage_ms["total"] >= max(
        v for k, v in response.stage_ms.items() if k != "total"
    )


def test_over_the_in_flight_limit_is_resource_exhausted():
    svc = service(max_in_flight=1)
    svc.in_flight = 1
    assert failure(svc, request()).code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert metric(svc, "ranker_rank_refused_total", {"bound": "max_in_flight"}) == 1


def metric(svc: RankingService, name: str, labels: dict[str, str] | None = None) -> float:
    return svc.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_metrics_count_outcomes_and_degradations():
    svc = service(FakeEmbedder(unavailable={"baking tin"}))
    rank(svc, request())
    failure(svc, request(top_k=500))
    assert metric(svc, "ranker_rank_requests_total", {"code": "OK"}) == 1
    assert metric(svc, "ranker_rank_requests_total", {"code": "INVALID_ARGUMENT"}) == 1
    assert metric(svc, "ranker_rank_degraded_total", {"reason": "encoder_timeout"}) == 1
    assert metric(svc, "ranker_rank_latency_seconds_count") == 2


def test_the_deadline_left_at_the_handler_is_recorded_for_calls_with_one():
    """What tells the wait in gRPC core, before the process took the call up, which no other
    metric sees: refused calls waited too."""
    svc = service(max_in_flight=1)
    asyncio.run(svc.rank(request(), 0.037))
    asyncio.run(svc.rank(request(), None))
    svc.in_flight = 1
    with pytest.raises(RequestFailed):
        asyncio.run(svc.rank(request(), 0.012))
    assert metric(svc, "ranker_rank_deadline_left_seconds_count") == 2
    assert metric(svc, "ranker_rank_deadline_left_seconds_sum") == pytest.approx(0.049)
    assert metric(svc, "ranker_rank_deadline_left_seconds_bucket", {"le": "0.02"}) == 1


class DeadlineRecorder(FakeEmbedder):
    async def embed(self, texts, deadline):
        self.remaining = deadline.remaining()
        return await super().embed(texts, deadline)


@pytest.mark.parametrize(
    ("budget_ms", "grpc_time_left_s", "bound_s"),
    # No budget_ms: the default (1,000 ms) or the deadline; budget_ms 50 with 45 ms of its
    # deadline left: 5 ms taken before the handler, within max_queued_share.
    [(0, 0.05, 0.05), (30, 10.0, 0.03), (50, 0.045, 0.045)],
)
def test_the_budget_is_the_smaller_of_budget_ms_and_the_grpc_deadline(
    budget_ms, grpc_time_left_s, bound_s
):
    embedder = DeadlineRecorder()
    asyncio.run(service(embedder).rank(request(budget_ms=budget_ms), grpc_time_left_s))
    assert bound_s * 0.5 < embedder.remaining <= bound_s


def mark(seconds: float, clock: Callable[[], float] = lambda: 0.0) -> HighWaterMark:
    """An estimate at `seconds` that, on a frozen clock, never decays during the test."""
    estimate = HighWaterMark(floor_s=0.0, clock=clock)
    estimate.observe(seconds)
    return estimate


def test_overload_is_refused_at_once_when_the_loop_runs_later_than_the_budget_allows():
    svc = service(max_queued_share=1.0)
    svc.loop_lag.lag = mark(0.030)
    assert rank(svc, request(budget_ms=100)).items  # 30 ms late for a 100 ms budget: served
    svc.loop_lag.lag = mark(0.060)
    error = failure(svc, request(budget_ms=50))
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert metric(svc, "ranker_rank_refused_total", {"bound": "budget_left"}) == 1
    assert "the event loop runs 60 ms late, which leaves 0 ms of this request's budget" in (
        error.message
    )


@pytest.mark.parametrize(
    ("budget_ms", "grpc_time_left_s", "loop_lag_s", "refused"),
    [
        (50, 0.045, 0.0, False),  # a deadline of 50 ms + 5 that waited 10 ms in gRPC's queue
        (50, 0.039, 0.0, True),  # 16 ms waited: 11 ms of the budget lost, over 20%
        (100, 0.075, 0.0, True),  # a deadline of 100 ms that waited 25
        # The loop ran 15 ms late (a full collection) before this request came: not queued.
        (50, 0.055, 0.015, False),
        (100, None, 0.030, False),  # no deadline: nothing shows a wait in gRPC's queue
        (0, 0.010, 0.0, False),  # no budget_ms: the deadline alone is the budget
    ],
)
def test_a_request_that_queued_for_over_a_share_of_its_budget_is_refused(
    budget_ms, grpc_time_left_s, loop_lag_s, refused
):
    svc = service(budget_margin_ms=5.0, max_queued_share=0.2)
    svc.after_embed = mark(0.001)
    svc.loop_lag.lag = mark(loop_lag_s)
    if not refused:
        assert asyncio.run(svc.rank(request(budget_ms=budget_ms), grpc_time_left_s)).items
        assert metric(svc, "ranker_rank_refused_total", {"bound": "max_queued_share"}) == 0
        return
    error = failure_with_deadline(svc, request(budget_ms=budget_ms), grpc_time_left_s)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"of this request's {budget_ms} ms budget" in error.message
    assert "max_queued_share" in error.message
    assert metric(svc, "ranker_rank_refused_total", {"bound": "max_queued_share"}) == 1


def test_the_embedding_wait_leaves_room_for_the_stages_after_it():
    embedder = DeadlineRecorder()
    svc = service(embedder, budget_margin_ms=2.0)
    svc.after_embed = mark(0.020)
    asyncio.run(svc.rank(request(budget_ms=100), None))
    assert 0.060 < embedder.remaining <= 0.078  # 100 - 2 margin - 20 for what follows


@pytest.mark.parametrize(
    ("budget_ms", "grpc_time_left_s", "bound_s"),
    # budget_ms: 100 - 10 waited before the handler - 2 margin - 20 after - 10 late timer;
    # the gRPC deadline already counts the wait: 50 - 2 - 20 - 10.
    [(100, None, 0.058), (0, 0.050, 0.018)],
)
def test_the_embedding_wait_counts_the_event_loops_lateness(budget_ms, grpc_time_left_s, bound_s):
    embedder = DeadlineRecorder()
    svc = service(embedder, budget_margin_ms=2.0)
    svc.after_embed = mark(0.020)
    svc.loop_lag.lag = svc.loop_lag.worst = mark(0.010)
    asyncio.run(svc.rank(request(budget_ms=budget_ms), grpc_time_left_s))
    assert bound_s - 0.010 < embedder.remaining <= bound_s


def test_the_embedding_wait_remembers_how_late_the_loop_ran_lately():
    # The loop ran 10 ms late a moment ago and is on time now: in the next burst of work the
    # timer that ends the wait may fire that late again. 100 - 2 margin - 20 after - 10.
    embedder = DeadlineRecorder()
    svc = service(embedder, budget_margin_ms=2.0)
    svc.after_embed = mark(0.020)
    svc.loop_lag.worst = mark(0.010)
    asyncio.run(svc.rank(request(budget_ms=100), None))
    assert 0.058 < embedder.remaining <= 0.068


def test_the_loop_lag_forgets_a_stall_fast_and_its_worst_slowly():
    async def stall_then_idle() -> LoopLag:
        lag = LoopLag()
        watch = asyncio.get_running_loop().create_task(lag.watch())
        await asyncio.sleep(0.02)
        time.sleep(0.05)  # the loop held up: the watch's timer fires 50 ms late
        await asyncio.sleep(0.3)
        watch.cancel()
        return lag

    lag = asyncio.run(stall_then_idle())
    assert lag.worst.value > 0.035  # 50 ms, halved once a second
    assert lag.lag.value < lag.worst.value  # halved every 35 ms


def test_one_stall_refuses_requests_for_a_while_not_for_good():
    now = [0.0]
    svc = service()
    svc.after_embed = mark(0.005, clock=lambda: now[0])
    svc.after_embed.observe(2.0)  # one pause of the whole process, longer than any budget
    assert failure(svc, request(budget_ms=50)).code == grpc.StatusCode.RESOURCE_EXHAUSTED
    now[0] += 10.0  # no request got through to add a sample; time alone forgets the stall
    assert rank(svc, request(budget_ms=50)).items


class SlowPolicy:
    """A policy whose ranking takes `seconds` more: computing (`busy`), or paused, as when the
    host takes the CPU away from the whole process."""

    def __init__(self, policy, seconds: float, busy: bool) -> None:
        self.policy, self.seconds, self.busy = policy, seconds, busy
        self.name = policy.name

    def rank(self, context, top_k):
        if self.busy:
            # Spins for this much of the thread's own CPU time, which a busy host cannot shorten.
            end = time.thread_time() + self.seconds
            while time.thread_time() < end:
                pass
        else:
            time.sleep(self.seconds)
        return self.policy.rank(context, top_k)


@pytest.mark.parametrize(("busy", "refused"), [(True, True), (False, False)])
def test_only_the_rankings_own_work_raises_what_is_reserved_for_it(busy, refused):
    svc = service()
    svc.policy = SlowPolicy(svc.policy, 0.060, busy)
    rank(svc, request(budget_ms=1000))
    if refused:
        assert svc.after_embed.value > 0.050
        error = failure(svc, request(budget_ms=50))
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "ms that ranking takes lately" in error.message
    else:
        assert svc.after_embed.value < 0.020
        assert rank(svc, request(budget_ms=50)).items


def test_an_answer_that_leaves_past_its_budget_is_counted_with_how_far():
    svc = service()
    rank(svc, request(budget_ms=1000))
    assert metric(svc, "ranker_rank_overrun_seconds_count") == 0
    # Ranking itself cannot be cut short: 60 ms of it in a 50 ms budget (45 ms less the margin).
    svc.policy = SlowPolicy(svc.policy, 0.060, busy=False)
    assert rank(svc, request(budget_ms=50)).items
    assert metric(svc, "ranker_rank_overrun_seconds_count") == 1
    assert 0.015 <= metric(svc, "ranker_rank_overrun_seconds_sum") < 0.5


def test_a_high_water_mark_rises_at_once_and_halves_every_half_life_down_to_its_floor():
    now = [0.0]
    estimate = HighWaterMark(floor_s=0.005, half_life_s=1.0, clock=lambda: now[0])
    assert estimate.value == 0.005
    estimate.observe(0.080)
    assert estimate.value == 0.080
    now[0] += 1.0
    assert estimate.value == pytest.approx(0.040)
    estimate.observe(0.010)  # below the decayed peak: the peak stays
    assert estimate.value == pytest.approx(0.040)
    now[0] += 10.0
    assert estimate.value == 0.005


class HangingEmbedder:
    async def embed(self, texts, deadline):
        await asyncio.sleep(3600)


def test_a_cancelled_rank_frees_its_slot_and_is_counted():
    svc = service(HangingEmbedder())

    async def scenario():
        task = asyncio.ensure_future(svc.rank(request(), time_left_s=None))
        await asyncio.sleep(0.01)
        assert svc.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert svc.in_flight == 0
    assert metric(svc, "ranker_rank_requests_total", {"code": "CANCELLED"}) == 1


def test_feedback_for_unknown_event_is_not_found():
    svc = service()
    with pytest.raises(RequestFailed) as caught:
        svc.feedback(pb.FeedbackRequest(event_id="nope", item_id="c1"))
    assert caught.value.code == grpc.StatusCode.NOT_FOUND


def test_feedback_for_an_item_not_shown_is_invalid():
    svc = service()
    response = rank(svc, request(top_k=1))
    with pytest.raises(RequestFailed) as caught:
        svc.feedback(pb.FeedbackRequest(event_id=response.event_id, item_id="c2"))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not in the slate" in caught.value.message


def test_feedback_reward_out_of_range_is_invalid():
    svc = service()
    response = rank(svc, request())
    with pytest.raises(RequestFailed, match=r"reward: 2\.0 is outside"):
        svc.feedback(pb.FeedbackRequest(event_id=response.event_id, item_id="c1", reward=2.0))


def test_repeated_feedback_is_credited_once():
    svc = service()
    response = rank(svc, request())
    click = pb.FeedbackRequest(event_id=response.event_id, item_id="c2", type=pb.EVENT_TYPE_CLICK)
    svc.feedback(click)
    svc.feedback(click)
    svc.feedback(pb.FeedbackRequest(event_id=response.event_id, item_id="c2", reward=0.5))
    _, rewards = svc.policy.stats.counts(["c2"])
    assert rewards.tolist() == [1.0]


def test_items_from_a_catalogue_file_may_come_by_id(tmp_path):
    catalogue = tmp_path / "items.csv"
    catalogue.write_text('item_id,text\nk1,candle red\nk2,"baking tin, round"\nk3,  \n')
    svc = service()
    assert load_catalogue(svc.known_items, catalogue) == 2
    response = rank(svc, request(candidates=[item("k1"), item("k2")]))
    assert [i.item_id for i in response.items] == ["k1", "k2"]


def test_feedback_reaches_the_policy_with_the_features_it_ranked_with():
    svc = service()
    updates = []
    svc.policy.update = lambda shown, reward: updates.append((shown, reward))
    response = rank(svc, request())
    svc.feedback(pb.FeedbackRequest(event_id=response.event_id, item_id="c2", reward=0.5))
    [(shown, reward)] = updates
    assert (shown.item_id, shown.member, reward) == ("c2", "similarity_ucb", 0.5)
    assert shown.vector.shape == (8,) and shown.interest.shape == (8,)


def test_issued_events_are_bounded_in_bytes():
    from ranker.issued_events import IssuedEvent, IssuedEvents

    events = IssuedEvents(max_bytes=3000)
    ids = [
        events.record(IssuedEvent("u", "p", ("a", "b"), np.zeros((2, 100), np.float32), None))
        for _ in range(5)
    ]
    assert events.bytes <= 3000
    assert events.get(ids[0]) is None and events.get(ids[-1]) is not None


def served_default_service() -> RankingService:
    settings = Settings()
    policy = build_policy(spec_from(settings))
    return RankingService(
        settings,
        FakeEmbedder(),
        default_interest_model(settings),
        policy,
        pinnable=pinnable_names(policy),
    )


@pytest.mark.parametrize("member", Settings().ensemble_members.split(","))
def test_a_request_pins_an_ensemble_member_and_its_feedback_reaches_it(member):
    svc = served_default_service()
    response = rank(svc, request(policy=member))
    assert response.policy == member
    svc.feedback(pb.FeedbackRequest(event_id=response.event_id, item_id="c1", reward=1.0))
    assert svc.issued.get(response.event_id).pinned


def test_unpinned_requests_name_the_member_the_ensemble_drew():
    svc = served_default_service()
    drawn = {rank(svc, request(user_id=f"u{n}")).policy for n in range(40)}
    assert drawn <= set(Settings().ensemble_members.split(","))
    assert len(drawn) > 1
