"""Builders for ranker.v1 messages from the retail sample, shared by the demo and the tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ranker.v1 import ranker_pb2 as pb


def events(
    items: dict[str, str], item_ids: Iterable[str], kind: int, when: datetime
) -> list[pb.BehaviorEvent]:
    out = []
    for item_id in item_ids:
        event = pb.BehaviorEvent(item=pb.Item(item_id=item_id, text=items[item_id]), type=kind)
        event.time.FromDatetime(when)
        out.append(event)
    return out


def rank_request(
    user_id: str,
    history: list[pb.BehaviorEvent],
    items: dict[str, str],
    candidate_ids: Iterable[str],
    top_k: int,
) -> pb.RankRequest:
    return pb.RankRequest(
        user_id=user_id,
        history=history,
        candidates=[pb.Item(item_id=i, text=items[i]) for i in candidate_ids],
        top_k=top_k,
    )
