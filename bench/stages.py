"""What one warm Rank call costs the ranker's handler, stage by stage, on one core.

bench/load.py measures latency under load, which on a shared host swings with the host. This
measures the work itself: the ranking path of `python -m ranker` (the same service, settings
and default policy, the embedding cache warmed by the real Triton), driven in process one
request at a time, without gRPC. Requests are load.py's: 50 history events, 100 candidates,
top_k 10, real product titles. It prints the mean, p50 and p99 of each `stage_ms` entry and the
CPU time per call, and writes bench/results/stages.json.

Each handler is timed twice: back to back, and spaced (an idle pause before each call, as a
worker sees calls under open-loop load: 4 ms is one call in four milliseconds, about 250/s per
worker). The spaced call costs more CPU on this VM because the core's caches cool while it
idles: after 4 ms, as much as after overwriting 64 MB (docs/operations.md, Capacity). A
process's capacity is about one core over (the spaced CPU time + gRPC's share per call). For
scale it also times, on the same requests, the handler of bench/bare_ranker.py (the issue's bare
server: parsing and numpy scoring from a dict).

    python bench/stages.py
    python bench/stages.py --calls 5000 --gap-ms 2
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import grpc
import numpy as np
import uvloop
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bare_ranker import BareRanker  # noqa: E402
from load import (  # noqa: E402
    ITEMS_CSV,
    WARM_UP_BUDGET_MS,
    build_requests,
    interpreter,
    load_titles,
)

from launcher.triton import TritonServer  # noqa: E402
from ranker.cli import build_service  # noqa: E402
from ranker.known_items import KnownItems  # noqa: E402
from ranker.service import RankingService, RequestFailed  # noqa: E402
from ranker.settings import Settings  # noqa: E402
from ranker.v1 import ranker_pb2 as pb  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# Long enough for the ranker's estimate of the event loop's lateness to forget a stall (it
# halves every 35 ms); refusals past MAX_REFUSED mean the host is too busy to measure on.
STALL_PAUSE_S = 0.5
MAX_REFUSED = 20


async def warm_up(service: RankingService, requests: Sequence[pb.RankRequest]) -> None:
    """Every text into the cache, then every path once more, warm, before the clock starts."""
    for request in requests:
        warming = pb.RankRequest()
        warming.CopyFrom(request)
        warming.budget_ms = WARM_UP_BUDGET_MS
        await service.rank(warming, None)
    for request in requests:
        await service.rank(request, None)


class Measured(NamedTuple):
    # Milliseconds per stage, one entry per timed call.
    stages: dict[str, list[float]]
    cpu_ms_per_call: float
    # Calls the ranker refused (RESOURCE_EXHAUSTED) after a stall of the whole process, then
    # made again once it had forgotten the stall: not timed.
    refused: int


async def measure(
    service: RankingService, requests: Sequence[pb.RankRequest], calls: int, gap_s: float = 0.0
) -> Measured:
    """Stage times of `calls` warm calls, each after an idle pause of `gap_s`, and the CPU
    milliseconds per call: the event loop thread's, in the calls alone (not in the pauses).

    When the host stops the process for longer than a request's budget, the ranker's admission
    refuses the calls that follow, as it should (budget.LoopLag); the call is made again after
    STALL_PAUSE_S, `MAX_REFUSED` times at most in a run."""
    stages: dict[str, list[float]] = {}
    gc.collect()
    cpu = 0.0
    refused = 0
    n = 0
    while n < calls:
        if gap_s:
            await asyncio.sleep(gap_s)
        started = time.thread_time()
        try:
            response = await service.rank(requests[n % len(requests)], None)
        except RequestFailed as failure:
            if failure.code != grpc.StatusCode.RESOURCE_EXHAUSTED or refused == MAX_REFUSED:
                raise
            refused += 1
            await asyncio.sleep(STALL_PAUSE_S)
            continue
        cpu += time.thread_time() - started
        if response.degraded:
            raise RuntimeError(f"a warm call degraded: {list(response.degraded)}")
        for stage, ms in response.stage_ms.items():
            stages.setdefault(stage, []).append(ms)
        n += 1
    return Measured(stages, cpu * 1000.0 / calls, refused)


async def bare_cpu_ms(requests: Sequence[pb.RankRequest], calls: int, gap_s: float = 0.0) -> float:
    """The CPU milliseconds per call of the bare server's handler, every text in its dict,
    each call after an idle pause of `gap_s`."""
    bare = BareRanker()
    for request in requests:
        await bare.Rank(request, None)
    cpu = 0.0
    for n in range(calls):
        if gap_s:
            await asyncio.sleep(gap_s)
        started = time.thread_time()
        await bare.Rank(requests[n % len(requests)], None)
        cpu += time.thread_time() - started
    return cpu * 1000.0 / calls


async def run(
    triton: TritonServer,
    repository: Path,
    requests: list[pb.RankRequest],
    calls: int,
    gaps_s: Sequence[float],
) -> list[Measured]:
    """`measure` once per gap, on one warmed service."""
    settings = Settings(triton_url=triton.grpc_url, model_repository=repository)
    service, embedder = build_service(settings, KnownItems(settings.known_items))
    try:
        await warm_up(service, requests)
        measured = []
        for gap_s in gaps_s:
            # Calls back to back hold the event loop all along: idle first, so that the lag the
            # admission bound estimates from the last run is forgotten (it halves every 35 ms).
            await asyncio.sleep(1.0)
            measured.append(await measure(service, requests, calls, gap_s))
        return measured
    finally:
        await embedder.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=200, help="distinct warm requests")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument(
        "--gap-ms", type=float, default=4.0, help="the idle pause before each spaced call"
    )
    args = parser.parse_args(argv)
    subprocess.run(
        [sys.executable, "-m", "export", "--skip-if-current", "--repository", str(args.repository)],
        check=True,
        cwd=ROOT,
    )
    payloads = build_requests(load_titles(ITEMS_CSV), args.requests, seed=1)
    requests = [pb.RankRequest.FromString(payload) for payload in payloads]
    threadpool_limits(limits=1, user_api="blas")  # as the ranker runs (ranker/cli.py)
    gaps_s = {"back_to_back": 0.0, "spaced": args.gap_ms / 1000.0}
    with TritonServer(args.repository) as triton:
        measured = uvloop.run(run(triton, args.repository, requests, args.calls, gaps_s.values()))
    report: dict[str, object] = {
        "calls": args.calls,
        "gap_ms": args.gap_ms,
        "python": interpreter(),
    }
    for (mode, gap_s), (stages, cpu_ms, refused) in zip(gaps_s.items(), measured, strict=True):
        bare_ms = uvloop.run(bare_cpu_ms(requests, args.calls, gap_s))
        rows = {
            stage: {
                "mean_ms": float(np.mean(times)),
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
            }
            for stage, times in stages.items()
        }
        print(f"{mode.replace('_', ' ') + ':':<12}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for stage, row in rows.items():
            print(f"{stage:<12}{row['mean_ms']:>10.3f}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
        print(
            f"CPU per call: {cpu_ms:.3f} ms; bare server's handler: {bare_ms:.3f} ms "
            f"(ranker / bare: {cpu_ms / bare_ms:.1f})"
        )
        if refused:
            print(f"refused after a stall of the host, made again: {refused} calls")
        report[mode] = {
            "cpu_ms_per_call": cpu_ms,
            "bare_cpu_ms_per_call": bare_ms,
            "refused_after_stalls": refused,
            "stages": rows,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stages.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'stages.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
