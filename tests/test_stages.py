"""bench/stages.py's measurement: every stage of every timed call, and no degraded call timed."""

import asyncio
import sys
from pathlib import Path

import pytest

from tests.test_service import FakeEmbedder, request, service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import stages


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_every_stage_of_every_call_is_kept(gap_s):
    requests = [request(), request(user_id="u2")]
    times, cpu_ms = asyncio.run(stages.measure(service(), requests, 5, gap_s))
    assert set(times) == {"validate", "embed", "interest", "policy", "serialize", "total"}
    assert all(len(calls) == 5 for calls in times.values())
    assert cpu_ms > 0.0


def test_a_degraded_call_is_not_timed_as_warm():
    svc = service(FakeEmbedder(unavailable={"baking tin"}))
    with pytest.raises(RuntimeError, match="degraded"):
        asyncio.run(stages.measure(svc, [request()], 3))


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_the_bare_handler_is_timed_on_the_same_requests(gap_s):
    assert asyncio.run(stages.bare_cpu_ms([request(), request(user_id="u2")], 5, gap_s)) > 0.0
