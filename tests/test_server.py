"""The gRPC face on a loopback port: the bench echo RPC is off unless asked for."""

import asyncio
import contextlib
import gc
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest

from launcher.ports import LOOPBACK, pick_free_port
from ranker.server import ECHO_METHOD, build_server
from ranker.v1 import ranker_pb2_grpc
from tests.test_service import HangingEmbedder, mark, request, service


@contextlib.asynccontextmanager
async def serving(svc) -> AsyncIterator[grpc.aio.Channel]:
    """The service's server started on its loopback port, and a channel to it."""
    bound = await build_server(svc.settings, svc)
    await bound.server.start()
    try:
        async with grpc.aio.insecure_channel(f"{LOOPBACK}:{bound.port}") as channel:
            yield channel
    finally:
        await bound.server.stop(None)


def call_echo(echo_rpc: bool, payload: bytes) -> bytes:
    async def scenario():
        svc = service(echo_rpc=echo_rpc, port=pick_free_port(), host=LOOPBACK)
        async with serving(svc) as channel:
            return await channel.unary_unary(ECHO_METHOD)(payload, timeout=5)

    return asyncio.run(scenario())


def test_echo_answers_the_same_bytes_when_switched_on():
    assert call_echo(True, b"\x00payload\xff") == b"\x00payload\xff"


def test_echo_is_not_served_by_default():
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        call_echo(False, b"x")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_metrics_are_served_in_prometheus_text():
    svc = service()
    svc.loop_lag.lag = mark(0.012)
    port = pick_free_port()
    svc.metrics.serve(port)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "ranker_rank_in_flight 0.0" in text
    assert "ranker_event_loop_lag_seconds 0.012" in text
    assert "process_cpu_seconds_total" in text


def test_garbage_collections_are_timed_by_generation():
    svc = service()
    svc.metrics.watch_gc()
    try:
        gc.collect(1)
        gc.collect(2)
    finally:
        gc.callbacks.pop()
    count = svc.metrics.registry.get_sample_value

    assert count("ranker_gc_pause_seconds_count", {"generation": "1"}) >= 1
    assert count("ranker_gc_pause_seconds_count", {"generation": "2"}) >= 1
    assert count("ranker_gc_pause_seconds_sum", {"generation": "2"}) > 0.0


def test_past_max_concurrent_rpcs_grpc_refuses_before_the_handler_runs():
    svc = service(HangingEmbedder(), max_concurrent_rpcs=1, port=pick_free_port(), host=LOOPBACK)

    async def scenario():
        async with serving(svc) as channel:
            stub = ranker_pb2_grpc.RankerStub(channel)
            held = asyncio.ensure_future(stub.Rank(request(budget_ms=2000), timeout=5))
            while svc.in_flight == 0:
                await asyncio.sleep(0.01)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Rank(request(), timeout=5)
            held.cancel()
            return caught.value.code()

    assert asyncio.run(scenario()) == grpc.StatusCode.RESOURCE_EXHAUSTED
    refused_by_handler = svc.metrics.registry.get_sample_value(
        "ranker_rank_requests_total", {"code": "RESOURCE_EXHAUSTED"}
    )
    assert refused_by_handler is None


def test_the_queue_bound_reads_the_real_grpc_deadline():
    """A deadline that leaves under 80% of budget_ms reads as time queued in gRPC core; the
    same request with a deadline past its budget is answered."""
    svc = service(port=pick_free_port(), host=LOOPBACK, max_queued_share=0.2)

    async def scenario():
        async with serving(svc) as channel:
            stub = ranker_pb2_grpc.RankerStub(channel)
            answered = await stub.Rank(request(budget_ms=2000), timeout=3)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Rank(request(budget_ms=2000), timeout=1)
            return answered, caught.value

    answered, refused = asyncio.run(scenario())
    assert answered.items
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "of this request's 2000 ms budget" in refused.details()
    assert "max_queued_share" in refused.details()
