"""The scripted demo: a user's interest shifts from candles to baking, then feedback moves an item.

Starts a real tritonserver on the exported model repository and a real ranker process, talks to
the ranker over gRPC like any client, prints each ranked list, and stops both when done or
interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from demo.catalogue import BAKING, CANDLES, family, load_items, unrelated
from demo.requests import events, rank_request
from launcher.ranker_process import RankerProcess
from launcher.triton import TritonServer
from ranker.v1 import ranker_pb2 as pb
from ranker.v1 import ranker_pb2_grpc

TOP_K = 8
SIMILAR_USERS = 6


def tag(text: str) -> str:
    if CANDLES.search(text):
        return "candles"
    return "baking" if BAKING.search(text) else ""


def show(title: str, response: pb.RankResponse, items: dict[str, str]) -> None:
    print(f"\n== {title}")
    print(f"   policy {response.policy}, model {response.model_version}")
    print(f"   {'#':>2} {'score':>6}  {'family':<8} item")
    for rank, ranked in enumerate(response.items, 1):
        text = items[ranked.item_id]
        flag = " (explored)" if ranked.explored else ""
        print(f"   {rank:>2} {ranked.score:>6.3f}  {tag(text):<8} {text}{flag}")


def run_session(stub: ranker_pb2_grpc.RankerStub, items: dict[str, str]) -> None:
    candles, baking = family(items, CANDLES), family(items, BAKING)
    candidates = candles[4:12] + baking[4:12] + unrelated(items)[::80][:8]
    now = datetime.now(UTC)
    old_history = events(items, candles[:4], pb.EVENT_TYPE_PURCHASE, now - timedelta(days=10))
    new_history = old_history + events(
        items, baking[:4], pb.EVENT_TYPE_CLICK, now - timedelta(hours=2)
    )

    def rank(user: str, history: list[pb.BehaviorEvent], top_k: int = TOP_K) -> pb.RankResponse:
        return stub.Rank(rank_request(user, history, items, candidates, top_k), timeout=10)

    show(
        "1. History: four candle and lantern purchases, ten days ago",
        rank("demo-user", old_history),
        items,
    )
    shifted = rank("demo-user", new_history)
    show("2. Newer history: four baking items clicked two hours ago", shifted, items)

    target = shifted.items[-1].item_id
    print(
        f"\n   {SIMILAR_USERS} similar users scroll their whole slate and click {items[target]!r}"
    )
    for n in range(SIMILAR_USERS):
        response = rank(f"similar-user-{n}", new_history, top_k=len(candidates))
        stub.Feedback(
            pb.FeedbackRequest(
                event_id=response.event_id, item_id=target, type=pb.EVENT_TYPE_CLICK
            ),
            timeout=10,
        )
    show("3. After that feedback, the same user again", rank("demo-user", new_history), items)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    args = parser.parse_args(argv)
    if not any((args.repository / "bert_encoder").glob("[0-9]*/model.*")):
        print(f"error: no exported encoder in {args.repository}; run `python -m export`")
        return 2
    # SIGTERM takes the same path as Ctrl-C, so both stop the servers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    items = load_items()
    try:
        print("starting tritonserver and the ranker ...", flush=True)
        with (
            TritonServer(args.repository) as triton,
            RankerProcess(triton.grpc_url, args.repository) as ranker,
            grpc.insecure_channel(ranker.address) as channel,
        ):
            print(f"Triton at {triton.grpc_url}, ranker at {ranker.address}")
            run_session(ranker_pb2_grpc.RankerStub(channel), items)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130
    print("\ndone: servers stopped")
    return 0
