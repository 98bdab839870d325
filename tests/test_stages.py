"""bench/stages.py's measurement: every stage of every timed call, and no degraded call timed."""

import asyncio
import sys
from pathlib import Path

import grpc
import pytest

from ranker.service import RequestFailed
from ranker.v1 import ranker_pb2 as pb
from tests.test_service import FakeEmbedder, request, service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import stages


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_every_stage_of_every_call_is_kept(gap_s):
    requests = [request(), request(user_id="u2")]
    times, cpu_ms, refused = asyncio.run(stages.measure(service(), requests, 5, gap_s))
    assert set(times) == {"validate", "embed", "interest", "policy", "serialize", "total"}
    assert all(len(calls) == 5 for calls in times.values())
    assert cpu_ms > 0.0
    assert refused == 0


class Refusing:
    """The service, refusing its first `refusals` calls as its admission does after a stall of
    the host (budget.LoopLag)."""

    def __init__(self, refusals: int) -> None:
        self.service = service()
        self.refusals = refusals

    async def rank(self, request: pb.RankRequest, time_left_s: float | None) -> pb.RankResponse:
        if self.refusals:
            self.refusals -= 1
            raise RequestFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded")
        return await self.service.rank(request, time_left_s)


def test_a_call_refused_after_a_stall_is_made_again_and_not_timed(monkeypatch):
    monkeypatch.setattr(stages, "STALL_PAUSE_S", 0.0)
    times, _, refused = asyncio.run(stages.measure(Refusing(2), [request()], 3))
    assert refused == 2
    assert all(len(calls) == 3 for calls in times.values())


def test_a_host_too_busy_to_measure_on_still_fails(monkeypatch):
    monkeypatch.setattr(stages, "STALL_PAUSE_S", 0.0)
    with pytest.raises(RequestFailed, match="overloaded"):
        asyncio.run(stages.measure(Refusing(stages.MAX_REFUSED + 1), [request()], 3))


def test_a_degraded_call_is_not_timed_as_warm():
    svc = service(FakeEmbedder(unavailable={"baking tin"}))
    with pytest.raises(RuntimeError, match="degraded"):
        asyncio.run(stages.measure(svc, [request()], 3))


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_the_bare_handler_is_timed_on_the_same_requests(gap_s):
    assert asyncio.run(stages.bare_cpu_ms([request(), request(user_id="u2")], 5, gap_s)) > 0.0
