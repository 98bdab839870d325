"""bench/stages.py's measurement: every stage of every timed call, and no degraded call timed."""

import asyncio
import sys
import time
from pathlib import Path

import pytest

from ranker.budget import HighWaterMark
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


def test_a_call_refused_after_a_stall_is_made_again_and_not_timed():
    """A host that stops the process past a budget makes the ranker refuse what follows (its
    estimate of the loop's lateness); the measurement waits that out instead of failing."""
    svc = service()
    # A 200 ms stall, forgotten ten times faster than the ranker would: it refuses a 50 ms
    # budget for the first 0.2 s, and has forgotten the stall after the 0.5 s pause.
    stall = HighWaterMark(floor_s=0.0, clock=lambda: time.monotonic() * 10.0)
    stall.observe(0.2)
    svc.loop_lag.lag = stall
    times, _, refused = asyncio.run(stages.measure(svc, [request(budget_ms=50)], 3))
    assert refused >= 1
    assert all(len(calls) == 3 for calls in times.values())


def test_a_degraded_call_is_not_timed_as_warm():
    svc = service(FakeEmbedder(unavailable={"baking tin"}))
    with pytest.raises(RuntimeError, match="degraded"):
        asyncio.run(stages.measure(svc, [request()], 3))


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_the_bare_handler_is_timed_on_the_same_requests(gap_s):
    assert asyncio.run(stages.bare_cpu_ms([request(), request(user_id="u2")], 5, gap_s)) > 0.0
