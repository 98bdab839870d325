"""What one warm Rank call costs the ranker's handler, stage by stage, on one core.

bench/load.py measures latency under load, which on a shared host swings with the host. This
measures the work itself: the ranking path of `python -m ranker` (the same service, settings
and default policy, the embedding cache warmed by the real Triton), driven in process one
request at a time, without gRPC. Requests are load.py's: 50 history events, 100 candidates,
top_k 10, real product titles. It prints the mean, p50 and p99 of each `stage_ms` entry and the
CPU time per call, and writes bench/results/stages.json.

A process's capacity is about one core over (this CPU time + gRPC's share per call, which
load.py's echo saturation shows). For scale it also times, on the same requests, the handler of
bench/bare_ranker.py (the issue's bare server: parsing and numpy scoring from a dict).

    python bench/stages.py
    python bench/stages.py --calls 5000
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import uvloop
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bare_ranker import BareRanker  # noqa: E402
from load import ITEMS_CSV, WARM_UP_BUDGET_MS, build_requests, load_titles  # noqa: E402

from launcher.triton import TritonServer  # noqa: E402
from ranker.cli import build_service  # noqa: E402
from ranker.known_items import KnownItems  # noqa: E402
from ranker.service import RankingService  # noqa: E402
from ranker.settings import Settings  # noqa: E402
from ranker.v1 import ranker_pb2 as pb  # noqa: E402

RESULTS = ROOT / "bench" / "results"


async def measure(
    service: RankingService, requests: Sequence[pb.RankRequest], calls: int
) -> tuple[dict[str, list[float]], float]:
    """Stage times of `calls` warm calls, and the CPU milliseconds per call."""
    for request in requests:
        warming = pb.RankRequest()
        warming.CopyFrom(request)
        warming.budget_ms = WARM_UP_BUDGET_MS
        await service.rank(warming, None)
    for request in requests:  # every path once more, warm, before the clock starts
        await service.rank(request, None)
    stages: dict[str, list[float]] = {}
    gc.collect()
    cpu = time.process_time()
    for n in range(calls):
        response = await service.rank(requests[n % len(requests)], None)
        if response.degraded:
            raise RuntimeError(f"a warm call degraded: {list(response.degraded)}")
        for stage, ms in response.stage_ms.items():
            stages.setdefault(stage, []).append(ms)
    return stages, (time.process_time() - cpu) * 1000.0 / calls


async def bare_cpu_ms(requests: Sequence[pb.RankRequest], calls: int) -> float:
    """The CPU milliseconds per call of the bare server's handler, every text in its dict."""
    bare = BareRanker()
    for request in requests:
        await bare.Rank(request, None)
    cpu = time.process_time()
    for n in range(calls):
        await bare.Rank(requests[n % len(requests)], None)
    return (time.process_time() - cpu) * 1000.0 / calls


async def run(
    triton: TritonServer, repository: Path, requests: list[pb.RankRequest], calls: int
) -> tuple[dict[str, list[float]], float]:
    settings = Settings(triton_url=triton.grpc_url, model_repository=repository)
    service, embedder = build_service(settings, KnownItems(settings.known_items))
    try:
        return await measure(service, requests, calls)
    finally:
        await embedder.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=200, help="distinct warm requests")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    args = parser.parse_args(argv)
    subprocess.run(
        [sys.executable, "-m", "export", "--skip-if-current", "--repository", str(args.repository)],
        check=True,
        cwd=ROOT,
    )
    payloads = build_requests(load_titles(ITEMS_CSV), args.requests, seed=1)
    requests = [pb.RankRequest.FromString(payload) for payload in payloads]
    threadpool_limits(limits=1, user_api="blas")  # as the ranker runs (ranker/cli.py)
    with TritonServer(args.repository) as triton:
        stages, cpu_ms = uvloop.run(run(triton, args.repository, requests, args.calls))
    bare_ms = uvloop.run(bare_cpu_ms(requests, args.calls))
    rows = {
        stage: {
            "mean_ms": float(np.mean(times)),
            "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)),
        }
        for stage, times in stages.items()
    }
    print(f"{'stage':<12}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for stage, row in rows.items():
        print(f"{stage:<12}{row['mean_ms']:>10.3f}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
    print(f"CPU per call: {cpu_ms:.3f} ms")
    print(
        f"bare server's handler: {bare_ms:.3f} ms per call (ranker / bare: {cpu_ms / bare_ms:.1f})"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "calls": args.calls,
        "cpu_ms_per_call": cpu_ms,
        "bare_cpu_ms_per_call": bare_ms,
        "stages": rows,
    }
    (RESULTS / "stages.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'stages.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
