"""bench/load.py's bookkeeping: what a row and the killed scenario report from a run's samples."""

import argparse
import asyncio
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from launcher.ports import LOOPBACK

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import load

from ranker.v1 import ranker_pb2 as pb

UNAVAILABLE = ("encoder_unavailable", "history_partial")
TIMEOUT = ("encoder_timeout", "history_partial")


def sample(
    latency_ms: float = 4.0,
    server_ms: float = 1.0,
    code: str = "OK",
    degraded: tuple[str, ...] = (),
    scheduled: float = 0.0,
) -> load.Sample:
    return load.Sample(scheduled, latency_ms, 0.5, code, degraded, server_ms)


def warm_row(samples: list[load.Sample], cpu_s: float = 0.5) -> load.Row:
    """`cpu_s`: the server's CPU seconds over the run; the host's two cores were busy 3 s of 4."""
    counts = (load.RankerCounts(0, 0, 0, 1, 0, 0), load.RankerCounts(90, 10, 2, 3, 1, 2))
    cpu = (load.CpuReading(7.0, 100.0, 200.0), load.CpuReading(7.0 + cpu_s, 103.0, 204.0))
    return load.summarise("warm", 100.0, load.Run(samples, 0.12), counts, cpu)


def test_a_row_counts_late_answers_and_errors_and_keeps_errors_out_of_the_handler_split():
    samples = [
        *[sample() for _ in range(98)],
        sample(latency_ms=60.0, server_ms=57.0),  # later than budget + 5 ms
        sample(latency_ms=55.0, server_ms=math.nan, code="DEADLINE_EXCEEDED"),
    ]
    row = warm_row(samples)
    assert row.late_over_budget_plus_5ms == 1
    assert row.errors == {"DEADLINE_EXCEEDED": 1}
    assert row.outside_handler_p99_ms == pytest.approx(3.0)
    assert row.cache_hit_rate == pytest.approx(0.9)
    assert row.generator_cpu == pytest.approx(0.12)
    assert row.server_cpu_ms == pytest.approx(5.0)  # 0.5 s over 100 requests sent
    assert row.host_busy == pytest.approx(0.75)
    assert row.notes["gc_pauses_over_10ms"] == 2
    assert row.notes["handler_overruns"] == 1
    assert row.notes["refused_by_queue_bound"] == 2


def test_a_row_notes_where_the_waits_for_triton_went():
    waited = [sample() for _ in range(3)]
    for n, answer in enumerate(waited):
        answer.wait_ms = {"queue": 2.0, "tokenize": 1.0, "triton": 10.0 * (n + 1)}
    row = warm_row([*waited, sample()])
    assert row.notes["queue_p99_ms"] == pytest.approx(2.0)
    assert row.notes["triton_p99_ms"] == pytest.approx(29.8)
    assert "triton_p99_ms" not in warm_row([sample()]).notes


def test_the_csv_has_one_column_per_printed_value():
    row = warm_row([sample(degraded=TIMEOUT), sample(code="RESOURCE_EXHAUSTED")])
    assert len(load.format_row(row).split()) == len(load.COLUMNS) == len(load.HEADER.split())


def test_refusals_are_counted_apart_from_other_errors():
    codes = ["RESOURCE_EXHAUSTED"] * 3 + ["DEADLINE_EXCEEDED", "UNAVAILABLE", "OK"]
    row = warm_row([sample(code=code) for code in codes])
    assert (row.refused, row.refused_by_handler, row.other_errors) == (3, 2, 2)
    printed = dict(zip(load.HEADER.split(), load.format_row(row).split(), strict=True))
    assert (printed["refused"], printed["by_handler"], printed["errors"]) == ("3", "2", "2")


def test_recovery_ends_with_the_last_answer_that_found_triton_unavailable():
    samples = [
        sample(degraded=TIMEOUT, scheduled=1.0),
        sample(scheduled=2.0),
        sample(degraded=UNAVAILABLE, scheduled=5.0),
        sample(degraded=UNAVAILABLE, scheduled=8.3),
        sample(degraded=TIMEOUT, scheduled=9.0),  # a slow embedding, not an outage
        sample(scheduled=14.0),
    ]
    control = [sample(degraded=TIMEOUT, scheduled=8.3), sample(degraded=TIMEOUT, scheduled=13.5)]
    control += [sample(scheduled=14.0), sample(code="RESOURCE_EXHAUSTED", scheduled=14.5)]
    notes = load.recovery(samples, killed=4.0, ready=8.0, control=control)
    assert notes["recovered_after_ready_s"] == pytest.approx(0.3)
    assert notes["degraded_before_kill"] == pytest.approx(0.5)
    assert notes["degraded_5s_after_ready"] == 0.0
    # The control's answers over the same stretch: one of two degraded, the refusal not counted.
    assert notes["control_degraded_5s_after_ready"] == pytest.approx(0.5)


def test_saturation_counts_refusals_apart_from_answers_and_keeps_sending():
    """A ranker shedding load answers RESOURCE_EXHAUSTED; a closed loop must go on, not stop."""
    calls = 0

    async def every_other(payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "shedding")
        return payload

    async def scenario() -> load.Throughput:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(every_other)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("bench.Test", {"Call": handler})]
        )
        port = server.add_insecure_port(f"{LOOPBACK}:0")
        await server.start()
        try:
            run = load.ClosedLoop(f"{LOOPBACK}:{port}", "/bench.Test/Call", [b"x"], 2, 0.3, 1)
            return await load.saturate(run)
        finally:
            await server.stop(None)

    throughput = asyncio.run(scenario())
    assert throughput.answered_rps > 0
    assert throughput.refused_rps == pytest.approx(throughput.answered_rps, rel=0.1)


def test_warm_rows_note_their_ratio_to_the_bare_server_in_the_same_run():
    warm = [warm_row([sample(latency_ms=8.0)] * 100, cpu_s=0.3) for _ in range(2)]
    bare = [warm_row([sample(latency_ms=2.0)] * 100, cpu_s=0.1) for _ in range(2)]
    for rows, scenario, saturation in ((warm, "warm", 800.0), (bare, "bare", 2000.0)):
        for row, rate in zip(rows, (250.0, 500.0), strict=True):
            row.scenario, row.rate = scenario, rate
        rows[-1].notes["rank_saturation_rps"] = saturation
    load.against_bare([*warm, *bare])
    assert [row.notes["p99_to_bare"] for row in warm] == [pytest.approx(4.0)] * 2
    assert [row.notes["cpu_to_bare"] for row in warm] == [pytest.approx(3.0)] * 2
    assert warm[-1].notes["rank_to_bare"] == pytest.approx(0.4)
    assert "p99_to_bare" not in bare[0].notes


BURN_THEN_WAIT = """
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print("burned", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_server_cpu_counts_a_process_and_its_descendants_and_nothing_else():
    """A server's workers are its supervisor's children: their CPU is the server's."""
    spawn_child = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], '0.4', '60']); "
        "child.wait()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", spawn_child, BURN_THEN_WAIT],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", BURN_THEN_WAIT, "0.4", "60"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline() == other.stdout.readline() == "burned\n"
        assert 0.35 <= load.server_cpu_s([parent.pid]) < 0.75
        assert 0.7 <= load.server_cpu_s([parent.pid, other.pid]) < 1.5
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the child too
        other.kill()
        for process in (parent, other):
            process.wait()


def test_the_host_is_read_busy_for_at_least_the_cpu_a_process_burned():
    before = load.read_cpu([])
    burn = [sys.executable, "-c", BURN_THEN_WAIT, "0.3", "0"]
    subprocess.run(burn, check=True, stdout=subprocess.DEVNULL)
    after = load.read_cpu([])
    busy_s = after.host_busy_s - before.host_busy_s
    assert busy_s >= 0.25
    assert after.host_s - before.host_s >= busy_s
    assert after.server_s == before.server_s == 0.0


def test_the_bare_server_ranks_by_the_history_and_serves_the_load_generator():
    """The yardstick must do the request's work, or the ratios to it say nothing."""
    history = [pb.BehaviorEvent(item=pb.Item(item_id="h", text="blue enamel teapot"))]
    candidates = [pb.Item(item_id=f"c{n}", text=f"garden gnome {n}") for n in range(20)]
    candidates[7] = pb.Item(item_id="same", text="blue enamel teapot")
    request = pb.RankRequest(user_id="u", history=history, candidates=candidates, top_k=5)
    args = argparse.Namespace(workers=1, max_concurrent_rpcs=4, connections=1)
    with load.BareServers(args) as servers:
        with grpc.insecure_channel(servers.address) as channel:
            rank = channel.unary_unary(
                load.RANK_METHOD,
                request_serializer=pb.RankRequest.SerializeToString,
                response_deserializer=pb.RankResponse.FromString,
            )
            answer = rank(request, timeout=10.0)
        payloads = [request.SerializeToString()]
        row = servers.run("bare", payloads, rate=50.0, duration_s=0.5, seed=1)
    assert answer.items[0].item_id == "same"
    assert answer.items[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(answer.items) == 5
    assert [item.score for item in answer.items] == sorted(
        (item.score for item in answer.items), reverse=True
    )
    assert row.sent > 0 and not row.errors
    assert math.isnan(row.cache_hit_rate)
