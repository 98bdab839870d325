"""The ranking path, stage by stage, free of gRPC so that it can be driven directly in tests."""

from __future__ import annotations

import grpc

from ranker.bandits.base import Policy, RankContext
from ranker.budget import Deadline
from ranker.embeddings import TextEmbedder
from ranker.interest import InterestModel
from ranker.issued_events import IssuedEvent, IssuedEvents
from ranker.known_items import KnownItems
from ranker.settings import Settings
from ranker.triton import EncoderTimeout, EncoderUnavailable
from ranker.v1 import ranker_pb2
from ranker.validation import InvalidRequest, check_feedback_reward, check_rank_request


class RequestFailed(Exception):
    """Ends a request with this gRPC status and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RankingService:
    def __init__(
        self,
        settings: Settings,
        embedder: TextEmbedder,
        interest_model: InterestModel,
        policy: Policy,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.interest_model = interest_model
        self.policy = policy
        self.known_items = KnownItems(settings.known_items)
        self.issued = IssuedEvents(settings.issued_events)

    async def rank(
        self, request: ranker_pb2.RankRequest, time_left_s: float | None
    ) -> ranker_pb2.RankResponse:
        try:
            checked = check_rank_request(request, self.settings, self.known_items)
        except InvalidRequest as error:
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        budget_s = checked.budget_ms / 1000.0
        deadline = Deadline(budget_s if time_left_s is None else min(budget_s, time_left_s))

        history_texts = [event.text for event in checked.history]
        try:
            embeddings = await self.embedder.embed(
                history_texts + checked.candidate_texts, deadline
            )
        except EncoderTimeout as error:
            raise RequestFailed(grpc.StatusCode.DEADLINE_EXCEEDED, str(error)) from None
        except EncoderUnavailable as error:
            raise RequestFailed(grpc.StatusCode.UNAVAILABLE, str(error)) from None

        split = len(history_texts)
        interest = self.interest_model.interest(checked.history, embeddings.vectors[:split])
        context = RankContext(
            user_id=checked.user_id,
            item_ids=checked.candidate_ids,
            vectors=embeddings.vectors[split:],
            interest=interest,
        )
        slate = self.policy.rank(context, checked.top_k)
        shown = tuple(checked.candidate_ids[i] for i in slate.indices)
        event_id = self.issued.record(IssuedEvent(checked.user_id, self.policy.name, shown))
        return ranker_pb2.RankResponse(
            event_id=event_id,
            items=[
                ranker_pb2.RankedItem(
                    item_id=item_id, score=score, propensity=propensity, explored=explored
                )
                for item_id, score, propensity, explored in zip(
                    shown,
                    slate.scores.tolist(),
                    slate.propensities.tolist(),
                    slate.explored.tolist(),
                    strict=True,
                )
            ],
            policy=self.policy.name,
            model_version=embeddings.model_version,
        )

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
            self.policy.update(request.item_id, reward - credited)
            event.rewarded[request.item_id] = reward
