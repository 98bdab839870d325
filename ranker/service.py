"""The ranking path, stage by stage, free of gRPC so that it can be driven directly in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from itertools import compress
from operator import attrgetter
from typing import NoReturn

import grpc

from ranker.bandits.base import Policy, RankContext, ShownItem
from ranker.budget import Deadline, HighWaterMark, LoopLag
from ranker.embeddings import Embeddings, TextEmbedder
from ranker.interest import InterestModel
from ranker.issued_events import IssuedEvent, IssuedEvents
from ranker.known_items import ItemTexts, KnownItems
from ranker.metrics import RankerMetrics
from ranker.settings import Settings
from ranker.v1 import ranker_pb2
from ranker.validation import InvalidRequest, check_feedback_reward, check_rank_request

CANDIDATES_WITHOUT_CONTENT = "candidates_without_content"
HISTORY_PARTIAL = "history_partial"


class RequestFailed(Exception):
    """Ends a request with this gRPC status and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def degradations(embeddings: Embeddings, candidates: int) -> list[str]:
    """What this answer gave up, in the words of docs/proto.md."""
    degraded = [embeddings.failure] if embeddings.failure else []
    if not embeddings.missing.any():
        return degraded
    if embeddings.missing[:candidates].any():
        degraded.append(CANDIDATES_WITHOUT_CONTENT)
    if embeddings.missing[candidates:].any():
        degraded.append(HISTORY_PARTIAL)
    return degraded


class StageClock:
    """Milliseconds per stage of one request, reported in the response."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.stage_ms: dict[str, float] = {}

    def mark(self, stage: str, parts: Mapping[str, float] | None = None) -> None:
        """`parts`: milliseconds within this stage, reported beside it."""
        now = time.perf_counter()
        self.stage_ms[stage] = (now - self.last) * 1000.0
        self.stage_ms.update(parts or {})
        self.last = now

    def total(self) -> dict[str, float]:
        return {**self.stage_ms, "total": (time.perf_counter() - self.start) * 1000.0}


class RankingService:
    def __init__(
        self,
        settings: Settings,
        embedder: TextEmbedder,
        interest_model: InterestModel,
        policy: Policy,
        known_items: ItemTexts | None = None,
        pinnable: Collection[str] = (),
        metrics: RankerMetrics | None = None,
        event_prefix: str = "",
    ) -> None:
        """`pinnable`: the policy names a request may pin; the policy's own name always.
        `event_prefix` starts every event id (a worker's name, workers.py)."""
        self.settings = settings
        self.embedder = embedder
        self.interest_model = interest_model
        self.policy = policy
        self.pinnable = frozenset({policy.name, *pinnable})
        self.known_items = (
            known_items if known_items is not None else KnownItems(settings.known_items)
        )
        self.issued = IssuedEvents(settings.issued_events_bytes, event_prefix)
        self.in_flight = 0
        self.metrics = metrics if metrics is not None else RankerMetrics()
        # What the stages after embedding take, reserved from the embedding wait, and how late
        # the event loop runs, which admission weighs against the budget. The stages are
        # measured in this thread's CPU time: a pause of the whole process (the host taking the
        # CPU away) says nothing of what they take, and in wall time one such pause would
        # refuse every request with a shorter budget for as long as the estimate took to decay.
        # The loop lag sees such a pause, and forgets it within tens of milliseconds.
        self.after_embed = HighWaterMark(floor_s=0.005)
        self.loop_lag = LoopLag()
        self.metrics.loop_lag.set_function(lambda: self.loop_lag.lag.value)
        self._lag_watch: asyncio.Task[None] | None = None

    async def rank(
        self, request: ranker_pb2.RankRequest, time_left_s: float | None
    ) -> ranker_pb2.RankResponse:
        started = time.perf_counter()
        arrived = time.monotonic()
        code = grpc.StatusCode.OK
        if time_left_s is not None:
            self.metrics.deadline_left.observe(time_left_s)
        try:
            self._admit(request, time_left_s)
            self.in_flight += 1
            self.metrics.in_flight.inc()
            try:
                response = await self._rank(request, time_left_s, arrived)
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.dec()
            for reason in response.degraded:
                self.metrics.degraded.labels(reason).inc()
            return response
        except RequestFailed as failure:
            code = failure.code
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self.metrics.requests.labels(code.name).inc()
            self.metrics.latency.observe(time.perf_counter() - started)

    def _admit(self, request: ranker_pb2.RankRequest, time_left_s: float | None) -> None:
        """Refuses at once what could not be served in time (too many in flight, too little
        budget left, too long queued in gRPC core): under overload a quick RESOURCE_EXHAUSTED
        beats a late answer."""
        limit = self.settings.max_in_flight
        if self.in_flight >= limit:
            self._refuse("max_in_flight", f"over {limit} Rank requests in flight")
        if self._lag_watch is None or self._lag_watch.done():
            self._lag_watch = asyncio.get_running_loop().create_task(self.loop_lag.watch())
        budget_s = self._budget_s(request.budget_ms, time_left_s)
        if budget_s < self.after_embed.value:
            self._refuse(
                "budget_left",
                f"overloaded: the event loop runs {self.loop_lag.lag.value * 1000:.0f} ms late, "
                f"which leaves {budget_s * 1000:.0f} ms of this request's budget, under the "
                f"{self.after_embed.value * 1000:.0f} ms that ranking takes lately",
            )
        # Over the limit, validation refuses budget_ms as INVALID_ARGUMENT.
        if time_left_s is not None and 0 < request.budget_ms <= self.settings.max_budget_ms:
            # What the request lost in gRPC core's queue, which only its deadline counts. Past
            # capacity that queue grows until requests run out of budget; bounding the wait
            # keeps time for the way back. Not the loop lag: a high-water mark, it stays up
            # for tens of milliseconds after a pause (a full collection), also for requests
            # that came after it; the bound on the budget left covers it.
            asked_s = request.budget_ms / 1000.0
            lost_s = asked_s - time_left_s
            share = self.settings.max_queued_share
            if lost_s > share * asked_s:
                self._refuse(
                    "max_queued_share",
                    f"overloaded: {lost_s * 1000:.0f} ms of this request's {asked_s * 1000:.0f} "
                    "ms budget were gone before the ranker took it up (waiting in gRPC's queue, "
                    "by its deadline; a deadline shorter than budget_ms counts the same), over "
                    f"max_queued_share ({share:.0%})",
                )

    def _refuse(self, bound: str, why: str) -> NoReturn:
        self.metrics.refused.labels(bound).inc()
        raise RequestFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{why}; retry with backoff")

    def _budget_s(self, budget_ms: int, time_left_s: float | None) -> float:
        """budget_ms (or the default; over the limit is refused in validation) or the gRPC
        deadline, whichever ends first, less the margin for what happens outside the handler.
        budget_ms runs from the request's arrival, about one loop lag before its handler
        started; gRPC's deadline already counts that wait."""
        budget_s = min(budget_ms or self.settings.default_budget_ms, self.settings.max_budget_ms)
        budget_s = budget_s / 1000.0 - self.loop_lag.lag.value
        if time_left_s is not None:
            budget_s = min(budget_s, time_left_s)
        return max(0.0, budget_s - self.settings.budget_margin_ms / 1000.0)

    async def _rank(
        self, request: ranker_pb2.RankRequest, time_left_s: float | None, arrived: float
    ) -> ranker_pb2.RankResponse:
        stages = StageClock()
        try:
            checked = check_rank_request(request, self.settings, self.known_items, self.pinnable)
        except InvalidRequest as error:
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        deadline = Deadline(self._budget_s(checked.budget_ms, time_left_s), start=arrived)
        stages.mark("validate")

        # Candidates first, then history newest first: the order in which time is spent. The
        # wait for embeddings ends early enough for the stages after it to fit the budget, and
        # by as much again as the event loop ran late lately: the timer that ends it may fire
        # that late, in the next burst of other requests' work.
        history = sorted(checked.history, key=attrgetter("time_s"), reverse=True)
        n = len(checked.candidate_texts)
        embeddings = await self.embedder.embed(
            checked.candidate_texts + [event.text for event in history],
            deadline.shortened(self.after_embed.value + self.loop_lag.worst.value),
        )
        stages.mark("embed", embeddings.wait_ms)
        after_embed_started = time.thread_time()

        history_vectors = embeddings.vectors[n:]
        if embeddings.missing[n:].any():
            found = ~embeddings.missing[n:]
            history, history_vectors = list(compress(history, found)), history_vectors[found]
        profile = self.interest_model.profile(history, history_vectors, encoder=embeddings.encoder)
        # Candidates without an embedding have zero vectors: they are scored by what the
        # profile knows of them by id and by what the policy learned from feedback.
        vectors = embeddings.vectors[:n]
        context = RankContext(
            user_id=checked.user_id,
            item_ids=checked.candidate_ids,
            vectors=vectors,
            interest=profile.vector,
            relevance=profile.relevance(checked.candidate_ids, vectors),
            pinned=checked.policy,
        )
        stages.mark("interest")
        slate = self.policy.rank(context, checked.top_k)
        shown = tuple(checked.candidate_ids[i] for i in slate.indices)
        event_id = self.issued.record(
            IssuedEvent(
                user_id=checked.user_id,
                policy=slate.policy,
                item_ids=shown,
                vectors=context.vectors[slate.indices],
                interest=profile.vector,
                pinned=slate.pinned,
            )
        )
        stages.mark("policy")
        response = ranker_pb2.RankResponse(
            event_id=event_id,
            policy=slate.policy,
            model_version=embeddings.model_version,
            degraded=degradations(embeddings, n),
        )
        # Added in place: a RankedItem built apart and then copied in costs half as much again.
        add_item = response.items.add
        for item_id, score, propensity, explored in zip(
            shown,
            slate.scores.tolist(),
            slate.propensities.tolist(),
            slate.explored.tolist(),
            strict=True,
        ):
            add_item(item_id=item_id, score=score, propensity=propensity, explored=explored)
        stages.mark("serialize")
        response.stage_ms.update(stages.total())
        self.after_embed.observe(time.thread_time() - after_embed_started)
        if overrun := deadline.overrun():
            self.metrics.overrun.observe(overrun)
        return response

    def feedback(self, request: ranker_pb2.FeedbackRequest) -> None:
        event = self.issued.get(request.event_id)
        if event is None:
            raise RequestFailed(
                grpc.StatusCode.NOT_FOUND,
                f"event_id: {request.event_id!r} is unknown or too old to take feedback",
            )
        if request.item_id not in event.item_ids:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"item_id: {request.item_id!r} was not in the slate of event {request.event_id}",
            )
        try:
            reward = check_feedback_reward(request)
        except InvalidRequest as error:
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        credited = event.rewarded.get(request.item_id, 0.0)
        if reward > credited:
            position = event.item_ids.index(request.item_id)
            shown = ShownItem(
                request.item_id,
                event.vectors[position],
                event.interest,
                event.policy,
                event.pinned,
            )
            self.policy.update(shown, reward - credited)
            event.rewarded[request.item_id] = reward
