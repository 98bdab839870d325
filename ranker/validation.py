"""Turns a RankRequest into checked, resolved input, or says exactly which field is wrong.

Nothing is remembered from a request that fails here, so a bad request changes no state.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ranker.interest import EVENT_WEIGHTS, HistoryEvent
from ranker.known_items import KnownItems
from ranker.settings import Settings
from ranker.v1 import ranker_pb2


class InvalidRequest(ValueError):
    """The request breaks the contract; the message names the field."""


@dataclass(frozen=True)
class RankInput:
    user_id: str
    history: list[HistoryEvent]
    candidate_ids: list[str]
    candidate_texts: list[str]
    top_k: int
    budget_ms: int
    # The policy the request pinned; "" for none.
    policy: str


def check_rank_request(
    request: ranker_pb2.RankRequest,
    settings: Settings,
    known: KnownItems,
    pinnable: Collection[str],
) -> RankInput:
    _check_length("user_id", request.user_id, settings.max_id_chars)
    if request.policy and request.policy not in pinnable:
        raise InvalidRequest(
            f"policy: unknown policy {request.policy!r}; this server has {sorted(pinnable)}"
        )
    if not request.candidates:
        raise InvalidRequest("candidates: at least one candidate is required")
    _check_count("candidates", request.candidates, settings.max_candidates)
    _check_count("history", request.history, settings.max_history)
    if request.top_k > settings.max_top_k:
        raise InvalidRequest(f"top_k: {request.top_k} is over the limit of {settings.max_top_k}")
    if request.budget_ms > settings.max_budget_ms:
        raise InvalidRequest(
            f"budget_ms: {request.budget_ms} is over the limit of {settings.max_budget_ms}"
        )

    # Texts given anywhere in the request resolve id-only items everywhere in it.
    items = [*request.candidates, *(event.item for event in request.history)]
    fresh = {item.item_id: item.text.strip() for item in items if item.text.strip()}
    seen: set[str] = set()
    candidate_ids, candidate_texts = [], []
    for i, item in enumerate(request.candidates):
        text = _item_text(f"candidates[{i}]", item, settings, known, fresh)
        if item.item_id in seen:
            raise InvalidRequest(f"candidates[{i}].item_id: duplicate id {item.item_id!r}")
        seen.add(item.item_id)
        candidate_ids.append(item.item_id)
        candidate_texts.append(text)

    history = []
    for i, event in enumerate(request.history):
        where = f"history[{i}]"
        text = _item_text(f"{where}.item", event.item, settings, known, fresh)
        if event.type not in EVENT_WEIGHTS:
            raise InvalidRequest(f"{where}.type: unknown event type {event.type}")
        if not event.HasField("time"):
            raise InvalidRequest(f"{where}.time: a timestamp is required")
        time_s = event.time.seconds + event.time.nanos / 1e9
        history.append(HistoryEvent(event.item.item_id, text, event.type, time_s))

    for item_id, text in fresh.items():
        known.remember(item_id, text)
    return RankInput(
        user_id=request.user_id,
        history=history,
        candidate_ids=candidate_ids,
        candidate_texts=candidate_texts,
        top_k=min(request.top_k or settings.default_top_k, len(candidate_ids)),
        budget_ms=request.budget_ms or settings.default_budget_ms,
        policy=request.policy,
    )


def check_feedback_reward(request: ranker_pb2.FeedbackRequest) -> float:
    """The reward in [0, 1]: as given, or derived from the event type when 0."""
    if not 0.0 <= request.reward <= 1.0:
        raise InvalidRequest(f"reward: {request.reward} is outside [0, 1]")
    if request.type not in EVENT_WEIGHTS:
        raise InvalidRequest(f"type: unknown event type {request.type}")
    if request.reward > 0.0:
        return request.reward
    positive = request.type not in (ranker_pb2.EVENT_TYPE_UNSPECIFIED, ranker_pb2.EVENT_TYPE_VIEW)
    return 1.0 if positive else 0.0


def _item_text(
    where: str,
    item: ranker_pb2.Item,
    settings: Settings,
    known: KnownItems,
    fresh: dict[str, str],
) -> str:
    if not item.item_id:
        raise InvalidRequest(f"{where}.item_id: must not be empty")
    _check_length(f"{where}.item_id", item.item_id, settings.max_id_chars)
    _check_length(f"{where}.text", item.text, settings.max_text_chars)
    text = item.text.strip() or fresh.get(item.item_id) or known.text(item.item_id)
    if text is None:
        raise InvalidRequest(
            f"{where}.text: empty, and item {item.item_id!r} has not been seen with a text"
        )
    return text


def _check_length(where: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidRequest(f"{where}: {len(value)} characters, over the limit of {limit}")


def _check_count(where: str, values: Sequence[object], limit: int) -> None:
    if len(values) > limit:
        raise InvalidRequest(f"{where}: {len(values)} entries, over the limit of {limit}")
