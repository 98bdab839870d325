"""`python -m ranker`: serve the ranker until SIGINT or SIGTERM, then drain and stop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Sequence

import uvloop
from threadpoolctl import threadpool_limits

from ranker.bandits.registry import build_policy, pinnable_names, spec_from
from ranker.cache import EmbeddingCache
from ranker.embeddings import TritonTextEmbedder
from ranker.interest import default_interest_model
from ranker.known_items import ItemTexts, KnownItems, load_catalogue_setting
from ranker.metrics import RankerMetrics
from ranker.server import build_server
from ranker.service import RankingService
from ranker.settings import Settings
from ranker.triton import TritonEncoderClient
from ranker.workers import FeedbackForwarder, Worker, serve_workers

SHUTDOWN_GRACE_S = 5.0


def build_service(
    settings: Settings, known_items: ItemTexts, event_prefix: str = ""
) -> tuple[RankingService, TritonTextEmbedder]:
    """Must run inside the event loop that serves: the Triton channel binds to it."""
    client = TritonEncoderClient(settings.triton_url, settings.model_name)
    cache = EmbeddingCache(settings.cache_bytes)
    metrics = RankerMetrics()
    metrics.watch(cache)
    embedder = TritonTextEmbedder(
        client,
        cache,
        settings.model_repository,
        settings.max_tokens,
        settings.batch_wait_ms / 1000.0,
        settings.late_grace_ms / 1000.0,
        settings.model_poll_ms / 1000.0,
        settings.triton_max_calls,
    )
    policy = build_policy(spec_from(settings))
    service = RankingService(
        settings,
        embedder,
        default_interest_model(settings),
        policy,
        known_items,
        pinnable=pinnable_names(policy),
        metrics=metrics,
        event_prefix=event_prefix,
    )
    return service, embedder


async def serve(settings: Settings, known_items: ItemTexts, worker: Worker | None) -> None:
    """`worker`: this process is one of several on the port (workers.py); None when alone."""
    service, embedder = build_service(settings, known_items, worker.event_prefix if worker else "")
    forwarder = FeedbackForwarder(worker) if worker else None
    bound = await build_server(settings, service, forwarder)
    await bound.server.start()
    if worker:
        await worker.all_started()
    await bound.serving()
    if settings.metrics_port:
        service.metrics.serve(settings.metrics_port)
    # Everything built so far lives as long as the process: out of the collector's way, a full
    # collection scans only what requests create, and stalls the event loop for less.
    gc.collect()
    gc.freeze()
    service.metrics.watch_gc()
    who = f"worker {worker.index} of {worker.count}" if worker else "ranker"
    print(
        f"{who} listening on {settings.host}:{bound.port}, Triton at {settings.triton_url}",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Load balancers see NOT_SERVING first, while requests in flight get the grace period.
    await bound.health.enter_graceful_shutdown()
    await bound.server.stop(SHUTDOWN_GRACE_S)
    await embedder.close()
    if forwarder:
        await forwarder.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.load(argv)
        build_policy(spec_from(settings))  # a bad policy setting stops here, not in the loop
        if settings.workers > 1:
            return serve_workers(settings, run_server)
        known_items = KnownItems(settings.known_items)
        load_catalogue_setting(known_items, settings.catalogue)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run_server(settings, known_items, None)


def one_thread_per_job() -> None:
    """Keeps numeric libraries to one thread each: this process's event loop, and a worker
    beside it, need the cores more than they do.

    A ranking multiplies matrices of a few hundred rows: BLAS threads cost more in hand-offs and
    spinning than they save (4x per request). A batch of titles tokenizes in about a
    millisecond on one thread; the tokenizers library's pool takes every core for it, which
    delays the event loops: in bench/load.py's killed scenario, three back-to-back pairs gave
    3-11 answers past budget + 5 ms with the pool and 0-1 without. An operator's own
    TOKENIZERS_PARALLELISM is kept.
    """
    threadpool_limits(limits=1, user_api="blas")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_server(settings: Settings, known_items: ItemTexts, worker: Worker | None) -> int:
    """Serves in this process until SIGINT or SIGTERM; 1 when it cannot serve."""
    one_thread_per_job()
    try:
        # uvloop: the event loop's own work per request (wake-ups, callbacks, timers) is a
        # sizeable share of a Rank call's latency; two workers at 500 requests/s held a p99 of
        # 10 ms with it and 31 ms without (bench/load.py).
        uvloop.run(serve(settings, known_items, worker))
    except RuntimeError as error:
        print(f"error: cannot serve on {settings.host}:{settings.port}: {error}", file=sys.stderr)
        return 1
    return 0
