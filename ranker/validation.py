"""Turns a RankRequest into checked, resolved input, or says exactly which field is wrong.

Nothing is remembered from a request that fails here, so a bad request changes no state.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ranker.interest import EVENT_WEIGHTS, HistoryEvent
from ranker.known_items import ItemTexts
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
    known: ItemTexts,
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

    # One pass of protobuf reads, then checks over plain lists: field access is what costs, and
    # each read of a message field builds a wrapper, so each is read once.
    candidates = [(item.item_id, item.text) for item in request.candidates]
    events = [
        ((item := event.item).item_id, item.text, event.type, event) for event in request.history
    ]
    history_items = [(item_id, text) for item_id, text, _, _ in events]
    _check_items("candidates[{}]", candidates, settings)
    _check_items("history[{}].item", history_items, settings)

    # Texts given anywhere in the request resolve id-only items everywhere in it.
    fresh = {
        item_id: stripped
        for item_id, text in (*candidates, *history_items)
        if (stripped := text.strip())
    }
    candidate_ids = [item_id for item_id, _ in candidates]
    if len(set(candidate_ids)) < len(candidate_ids):
        seen: set[str] = set()
        for i, item_id in enumerate(candidate_ids):
            if item_id in seen:
                raise InvalidRequest(f"candidates[{i}].item_id: duplicate id {item_id!r}")
            seen.add(item_id)
    candidate_texts = _resolve_texts("candidates[{}]", candidates, known, fresh)
    history_texts = _resolve_texts("history[{}].item", history_items, known, fresh)

    history = []
    for i, ((item_id, _, kind, event), text) in enumerate(zip(events, history_texts, strict=True)):
        if kind not in EVENT_WEIGHTS:
            raise InvalidRequest(f"history[{i}].type: unknown event type {kind}")
        stamp = event.time
        seconds, nanos = stamp.seconds, stamp.nanos
        # An unset time reads as the epoch; only then is asking whether it was set worth a call.
        if not (seconds or nanos) and not event.HasField("time"):
            raise InvalidRequest(f"history[{i}].time: a timestamp is required")
        history.append(HistoryEvent(item_id, text, kind, seconds + nanos / 1e9))

    known.remember(fresh)
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


def _check_items(where: str, items: list[tuple[str, str]], settings: Settings) -> None:
    """Ids present and within limits; the whole list at once, the culprit only on failure."""
    ids = [item_id for item_id, _ in items]
    if not all(ids):
        raise InvalidRequest(f"{where.format(ids.index(''))}.item_id: must not be empty")
    for name, values, limit in (
        ("item_id", ids, settings.max_id_chars),
        ("text", [text for _, text in items], settings.max_text_chars),
    ):
        if max(map(len, values), default=0) > limit:
            i = next(i for i, value in enumerate(values) if len(value) > limit)
            _check_length(f"{where.format(i)}.{name}", values[i], limit)


def _resolve_texts(
    where: str, items: list[tuple[str, str]], known: ItemTexts, fresh: dict[str, str]
) -> list[str]:
    """An item's own text, else one given for its id elsewhere in the request, else a known one."""
    texts = []
    for i, (item_id, text) in enumerate(items):
        resolved = text.strip() or fresh.get(item_id) or known.text(item_id)
        if resolved is None:
            raise InvalidRequest(
                f"{where.format(i)}.text: empty, and item {item_id!r} has not been seen with a text"
            )
        texts.append(resolved)
    return texts


def _check_length(where: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidRequest(f"{where}: {len(value)} characters, over the limit of {limit}")


def _check_count(where: str, values: Sequence[object], limit: int) -> None:
    if len(values) > limit:
        raise InvalidRequest(f"{where}: {len(values)} entries, over the limit of {limit}")
