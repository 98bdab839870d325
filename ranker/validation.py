"""Turns a RankRequest into checked, resolved input, or says exactly which field is wrong.

Nothing is remembered from a request that fails here, so a bad request changes no state.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, attrgetter, truediv
from typing import Any

from google.protobuf.message import Message

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
    user_id, policy = request.user_id, request.policy
    _check_length("user_id", user_id, settings.max_id_chars)
    if policy and policy not in pinnable:
        raise InvalidRequest(
            f"policy: unknown policy {policy!r}; this server has {sorted(pinnable)}"
        )
    candidates, events = request.candidates, request.history
    if not candidates:
        raise InvalidRequest("candidates: at least one candidate is required")
    _check_count("candidates", candidates, settings.max_candidates)
    _check_count("history", events, settings.max_history)
    top_k, budget_ms = request.top_k, request.budget_ms
    if top_k > settings.max_top_k:
        raise InvalidRequest(f"top_k: {top_k} is over the limit of {settings.max_top_k}")
    if budget_ms > settings.max_budget_ms:
        raise InvalidRequest(
            f"budget_ms: {budget_ms} is over the limit of {settings.max_budget_ms}"
        )

    # Protobuf reads are what costs: each field is read once per message, and the messages are
    # held in lists (a slice builds them in one C call) so that every read reuses one wrapper.
    candidates, events = candidates[:], events[:]
    items = _read(events, "item")
    candidate_ids, history_ids = _read(candidates, "item_id"), _read(items, "item_id")
    candidate_texts, history_texts = _read(candidates, "text"), _read(items, "text")
    _check_items("candidates[{}]", candidate_ids, candidate_texts, settings)
    _check_items("history[{}].item", history_ids, history_texts, settings)

    # Texts given anywhere in the request resolve id-only items everywhere in it.
    candidate_texts = list(map(str.strip, candidate_texts))
    history_texts = list(map(str.strip, history_texts))
    fresh = dict(compress(zip(candidate_ids, candidate_texts, strict=True), candidate_texts))
    # Each candidate with a text is in `fresh` once, by its id: when all are, no two share one.
    if len(fresh) < len(candidate_ids) and len(set(candidate_ids)) < len(candidate_ids):
        seen: set[str] = set()
        for i, item_id in enumerate(candidate_ids):
            if item_id in seen:
                raise InvalidRequest(f"candidates[{i}].item_id: duplicate id {item_id!r}")
            seen.add(item_id)
    fresh.update(compress(zip(history_ids, history_texts, strict=True), history_texts))
    candidate_texts = _resolve_texts("candidates[{}]", candidate_ids, candidate_texts, known, fresh)
    history_texts = _resolve_texts("history[{}].item", history_ids, history_texts, known, fresh)
    history = _check_history(events, history_ids, history_texts)

    known.remember(fresh)
    return RankInput(
        user_id=user_id,
        history=history,
        candidate_ids=candidate_ids,
        candidate_texts=candidate_texts,
        top_k=min(top_k or settings.default_top_k, len(candidate_ids)),
        budget_ms=budget_ms or settings.default_budget_ms,
        policy=policy,
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


def _read(messages: list[Message], field: str) -> list[Any]:
    """One field of every message; the loop runs in C (a request has hundreds of items)."""
    return list(map(attrgetter(field), messages))


def _check_items(where: str, ids: list[str], texts: list[str], settings: Settings) -> None:
    """Ids present and within limits; the whole list at once, the culprit only on failure."""
    if not all(ids):
        raise InvalidRequest(f"{where.format(ids.index(''))}.item_id: must not be empty")
    for name, values, limit in (
        ("item_id", ids, settings.max_id_chars),
        ("text", texts, settings.max_text_chars),
    ):
        if len(max(values, key=len, default="")) > limit:
            i = next(i for i, value in enumerate(values) if len(value) > limit)
            _check_length(f"{where.format(i)}.{name}", values[i], limit)


def _resolve_texts(
    where: str, ids: list[str], texts: list[str], known: ItemTexts, fresh: dict[str, str]
) -> list[str]:
    """An item's own text (stripped), else one given for its id elsewhere in the request, else a
    known one."""
    # The common request gives every text.
    if all(texts):
        return texts
    resolved_texts = []
    for i, (item_id, text) in enumerate(zip(ids, texts, strict=True)):
        resolved = text or fresh.get(item_id) or known.text(item_id)
        if resolved is None:
            raise InvalidRequest(
                f"{where.format(i)}.text: empty, and item {item_id!r} has not been seen with a text"
            )
        resolved_texts.append(resolved)
    return resolved_texts


def _check_history(
    events: list[ranker_pb2.BehaviorEvent], ids: list[str], texts: list[str]
) -> list[HistoryEvent]:
    kinds = _read(events, "type")
    stamps = _read(events, "time")
    seconds, nanos = _read(stamps, "seconds"), _read(stamps, "nanos")
    times = list(map(add, seconds, map(truediv, nanos, repeat(1e9))))
    # The common history has known types and nonzero times (an unset time reads as 0.0): then
    # no event needs a closer look, and only a failing one pays for the loop.
    if not (EVENT_WEIGHTS.keys() >= set(kinds) and all(times)):
        for i, (event, kind, whole, fraction) in enumerate(
            zip(events, kinds, seconds, nanos, strict=True)
        ):
            if kind not in EVENT_WEIGHTS:
                raise InvalidRequest(f"history[{i}].type: unknown event type {kind}")
            # An unset time reads as the epoch; only then is asking whether it was set worth a call.
            if not (whole or fraction) and not event.HasField("time"):
                raise InvalidRequest(f"history[{i}].time: a timestamp is required")
    # tuple.__new__ builds them in C; the NamedTuple's own __new__ is a Python call each.
    return list(
        map(tuple.__new__, repeat(HistoryEvent), zip(ids, texts, kinds, times, strict=True))
    )


def _check_length(where: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidRequest(f"{where}: {len(value)} characters, over the limit of {limit}")


def _check_count(where: str, values: Sequence[object], limit: int) -> None:
    if len(values) > limit:
        raise InvalidRequest(f"{where}: {len(values)} entries, over the limit of {limit}")
