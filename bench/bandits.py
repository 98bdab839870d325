"""Scoring and slate selection per policy: 1,000 candidates, d=384 embeddings, one core.

Every policy of the registry (ranker/bandits/registry.py) with its default parameters, the EXP3
ensemble and the traffic split included. Each timed call is one `policy.rank` on warm state
(half the candidates with shows and rewards, the contextual models trained on earlier slates),
so it includes the stats lookup, scoring, slate choice, propensities and recording the shows.
BLAS is held to one thread and the process to one CPU. Prints p50/p99 per policy of CPU time per
call (the cost on one core), and the wall-clock p99, and writes bench/results/bandits.json.

    python bench/bandits.py [--calls 3000] [--candidates 1000] [--dim 384] [--top-k 10]
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ranker.bandits.base import Policy, RankContext, ShownItem, cosine_context  # noqa: E402
from ranker.bandits.registry import (  # noqa: E402
    ENSEMBLE,
    SPLIT,
    PolicySpec,
    build_policy,
    member_names,
)

ROOT = Path(__file__).resolve().parent.parent
SPLIT_SHARES = "ucb1:1,thompson:1,linucb:1"


def policies() -> dict[str, Callable[[], Policy]]:
    """Every policy the registry serves, as the registry builds it, and the meta-policies."""
    return {
        name: (lambda name=name: build_policy(PolicySpec(policy=name, ab_split=SPLIT_SHARES)))
        for name in [*member_names(), ENSEMBLE, SPLIT]
    }


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def warm_up(policy: Policy, contexts: list[RankContext], top_k: int) -> None:
    """Earlier traffic: slates shown and a reward for each slate's second item."""
    for context in contexts:
        slate = policy.rank(context, top_k)
        item = int(slate.indices[1])
        policy.update(
            ShownItem(
                context.item_ids[item], context.vectors[item], context.interest, slate.policy
            ),
            1.0,
        )


def measure(policy: Policy, contexts: list[RankContext], top_k: int, calls: int) -> dict:
    """p50/p99 of the CPU time each call spends on this thread, and the wall-clock p99.

    CPU time is the cost on one core; on a shared machine the wall clock also counts the time
    other processes held the core, which says more about the machine than about the policy.
    """
    cpu = np.empty(calls)
    wall = np.empty(calls)
    for call in range(calls):
        context = contexts[call % len(contexts)]
        wall_start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
        policy.rank(context, top_k)
        cpu[call] = time.thread_time_ns() - cpu_start
        wall[call] = time.perf_counter_ns() - wall_start
    return {
        "p50_ms": float(np.percentile(cpu, 50)) / 1e6,
        "p99_ms": float(np.percentile(cpu, 99)) / 1e6,
        "wall_p50_ms": float(np.percentile(wall, 50)) / 1e6,
        "wall_p99_ms": float(np.percentile(wall, 99)) / 1e6,
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = np.random.default_rng(0)
    catalogue = [f"item-{i}" for i in range(2 * args.candidates)]
    catalogue_vectors = unit_rows(rng, len(catalogue), args.dim)
    contexts = []
    for user in range(32):
        chosen = rng.choice(len(catalogue), size=args.candidates, replace=False)
        contexts.append(
            cosine_context(
                user_id=f"user-{user}",
                item_ids=[catalogue[i] for i in chosen],
                vectors=catalogue_vectors[chosen],
                interest=unit_rows(rng, 1, args.dim)[0],
            )
        )

    results = {}
    print(f"{'policy':<26}{'p50 ms':>10}{'p99 ms':>10}{'wall p99':>10}")
    for name, make in policies().items():
        policy = make()
        warm_up(policy, contexts * 8, args.top_k)
        results[name] = measure(policy, contexts, args.top_k, args.calls)
        row = results[name]
        print(f"{name:<26}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}{row['wall_p99_ms']:>10.3f}")

    out = ROOT / "bench" / "results" / "bandits.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "candidates": args.candidates,
        "dim": args.dim,
        "top_k": args.top_k,
        "threads": 1,
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "policies": results,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
