"""Several ranker workers on one port, over the real Triton: every connection is served, feedback
reaches the worker that placed the slate, ids learned on one worker resolve on all, and SIGTERM
stops them all."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from demo.catalogue import load_items
from demo.requests import events
from launcher.ports import LOOPBACK, pick_free_port_run
from launcher.ranker_process import RankerProcess
from launcher.triton import TritonServer
from ranker.v1 import ranker_pb2 as pb
from ranker.v1 import ranker_pb2_grpc
from ranker.workers import Worker

pytestmark = pytest.mark.integration

ITEMS = load_items()
IDS = sorted(ITEMS)[:40]
WORKERS = 2
# Connections are spread over the workers by a hash of their ports: with this many, the chance
# that one worker gets none is 2 x 2^-24.
CONNECTIONS = 24


@pytest.fixture(scope="module")
def worker_port_base() -> int:
    return pick_free_port_run(WORKERS)


@pytest.fixture(scope="module")
def workers(triton: TritonServer, model_repository, worker_port_base) -> RankerProcess:
    args = ["--workers", str(WORKERS), "--worker-port-base", str(worker_port_base)]
    with RankerProcess(triton.grpc_url, model_repository, extra_args=args) as ranker:
        yield ranker


def connections(address: str) -> list[grpc.Channel]:
    """Each its own TCP connection, as separate clients would open."""
    return [
        grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]


def request(candidates: list[str], with_text: bool) -> pb.RankRequest:
    history = events(ITEMS, IDS[:3], pb.EVENT_TYPE_PURCHASE, datetime.now(UTC) - timedelta(days=1))
    items = [pb.Item(item_id=i, text=ITEMS[i] if with_text else "") for i in candidates]
    return pb.RankRequest(user_id="u", history=history, candidates=items, budget_ms=10_000)


def test_every_worker_serves_and_feedback_reaches_the_one_that_ranked(workers):
    channels = connections(workers.address)
    try:
        stubs = [ranker_pb2_grpc.RankerStub(channel) for channel in channels]
        responses = [stub.Rank(request(IDS[3:13], True), timeout=30) for stub in stubs]
        owners = {re.match(r"w(\d+)-", r.event_id).group(1) for r in responses}
        assert owners == {str(i) for i in range(WORKERS)}
        # All feedback over one connection: half of it for the other worker's events.
        for response in responses:
            stubs[0].Feedback(
                pb.FeedbackRequest(
                    event_id=response.event_id,
                    item_id=response.items[0].item_id,
                    type=pb.EVENT_TYPE_CLICK,
                ),
                timeout=10,
            )
        # The other worker's answer comes back as it was: sent over a connection of worker 0.
        on_worker_0 = next(s for s, r in zip(stubs, responses, strict=True) if r.event_id[1] == "0")
        with pytest.raises(grpc.RpcError) as caught:
            on_worker_0.Feedback(
                pb.FeedbackRequest(event_id="w1-unknown", item_id="x", type=pb.EVENT_TYPE_CLICK),
                timeout=10,
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'w1-unknown' is unknown" in caught.value.details()
    finally:
        for channel in channels:
            channel.close()


def test_a_round_robin_client_spreads_its_requests_over_the_workers_own_ports(
    workers, worker_port_base
):
    ports = range(worker_port_base, worker_port_base + WORKERS)
    target = "ipv4:" + ",".join(f"{LOOPBACK}:{port}" for port in ports)
    options = [("grpc.lb_policy_name", "round_robin")]
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = ranker_pb2_grpc.RankerStub(channel)
        owners = [stub.Rank(request(IDS[3:13], True), timeout=30).event_id[:3] for _ in range(16)]
    assert sorted(set(owners)) == [f"w{i}-" for i in range(WORKERS)]


def test_ids_sent_with_text_to_one_worker_resolve_on_every_worker(workers):
    channels = connections(workers.address)
    try:
        ranker_pb2_grpc.RankerStub(channels[0]).Rank(request(IDS[13:25], True), timeout=30)
        for channel in channels:
            response = ranker_pb2_grpc.RankerStub(channel).Rank(
                request(IDS[13:25], False), timeout=30
            )
            assert {item.item_id for item in response.items} <= set(IDS[13:25])
    finally:
        for channel in channels:
            channel.close()


def test_sigterm_stops_every_worker_and_frees_the_port(triton, model_repository):
    ranker = RankerProcess(triton.grpc_url, model_repository, extra_args=["--workers", "2"])
    ranker.start()
    assert ranker.stop() == 0
    # Started alone on the same port: it would refuse a port a stray worker still held.
    alone = RankerProcess(triton.grpc_url, model_repository, port=ranker.port).start()
    assert alone.stop() == 0


def serve_on_a_taken_port(ranker, triton, model_repository, *args: str):
    command = [sys.executable, "-m", "ranker", "--host", LOOPBACK, "--port", str(ranker.port)]
    command += ["--triton-url", triton.grpc_url, "--model-repository", str(model_repository)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)


def test_a_lone_ranker_refuses_a_port_already_served(ranker, triton, model_repository):
    second = serve_on_a_taken_port(ranker, triton, model_repository)
    assert second.returncode == 1
    assert f"cannot serve on {LOOPBACK}:{ranker.port}" in second.stderr


def test_a_worker_that_fails_stops_the_others_and_the_ranker_exits_1(
    ranker, triton, model_repository
):
    second = serve_on_a_taken_port(ranker, triton, model_repository, "--workers", "2")
    assert second.returncode == 1
    assert f"cannot serve on {LOOPBACK}:{ranker.port}" in second.stderr
    assert "exited; stopped the others" in second.stderr


def test_event_owner_is_read_from_the_prefix(tmp_path):
    worker = Worker(1, 3, tmp_path, 0, threading.Barrier(1))
    assert worker.event_prefix == "w1-"
    assert [worker.owner(e) for e in ("w0-ab", "w2-cd", "w3-ef", "ab", "wx-1")] == [
        0,
        2,
        None,
        None,
        None,
    ]
    assert worker.socket(2) == f"unix:{tmp_path}/worker-2.sock"
