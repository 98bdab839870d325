"""Watching a ranker follow a rollout: probe Rank requests until it reports the new version.

The ranker asks Triton for the newest ready version every `--model-poll-ms` and on the next
request after that; its answers name the version that produced their embeddings, so the first
answer that names the new version proves the switch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from demo.requests import events, rank_request
from ranker.v1 import ranker_pb2 as pb
from ranker.v1 import ranker_pb2_grpc

PROBE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 5.0
PROBE_USER = "rollout-probe"
PROBE_ITEMS = {
    "rollout-probe-seen": "WHITE HANGING HEART T-LIGHT HOLDER",
    "rollout-probe-a": "REGENCY CAKESTAND 3 TIER",
    "rollout-probe-b": "JUMBO BAG RED RETROSPOT",
}


def probe_request() -> pb.RankRequest:
    """The smallest valid request: one viewed item and two candidates, all catalogue titles."""
    history = events(PROBE_ITEMS, ["rollout-probe-seen"], pb.EVENT_TYPE_VIEW, datetime.now(UTC))
    return rank_request(PROBE_USER, history, PROBE_ITEMS, list(PROBE_ITEMS)[1:], top_k=1)


def wait_for_version(
    ranker_url: str, expected: str, timeout_s: float, log: Callable[[str], None]
) -> str:
    """Probes until the ranker answers with `expected` ("name:version") or `timeout_s` passes;
    returns the last version it reported ("" if it never answered)."""
    deadline = time.monotonic() + timeout_s
    seen = ""
    last_error = ""
    with grpc.insecure_channel(ranker_url) as channel:
        stub = ranker_pb2_grpc.RankerStub(channel)
        while True:
            try:
                reply = stub.Rank(probe_request(), timeout=PROBE_TIMEOUT_S)
            except grpc.RpcError as error:
                message = f"ranker at {ranker_url}: {error.code().name}: {error.details()}"
                if message != last_error:
                    log(message)
                    last_error = message
            else:
                if reply.model_version != seen:
                    seen = reply.model_version
                    log(f"ranker at {ranker_url} answers with {seen or 'no model'}")
                if seen == expected:
                    return seen
            if time.monotonic() >= deadline:
                return seen
            time.sleep(PROBE_INTERVAL_S)
