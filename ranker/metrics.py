"""Prometheus metrics of the ranker: what an operator watches and what bench/load.py reads.

Each service gets its own registry, so tests can build several services in one process; the
cache keeps plain counters that are read at scrape time rather than pushed per lookup.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ranker.cache import EmbeddingCache

# Milliseconds of interest are single digits to the budget's tens: the buckets follow.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0)
GC_PAUSE_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# Client deadlines run from tens of milliseconds to seconds; the wait in front of the handler
# is what an operator reads off them, so the grid is finest where budgets are.
DEADLINE_LEFT_BUCKETS_S = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.2, 0.5, 1.0, 5.0, 60.0)
# An overrun eats into budget_margin_ms (5 ms by default): the grid is finest up to it.
OVERRUN_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1.0)


class _CacheCollector(Collector):
    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lookups = CounterMetricFamily(
            "ranker_embedding_cache_lookups", "Embedding cache lookups", labels=["result"]
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "ranker_embedding_cache_bytes", "Bytes held by the embedding cache", self.cache.bytes
        )


class RankerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ranker_rank_requests",
            "Rank requests by gRPC status code",
            ["code"],
            registry=self.registry,
        )
        # Which admission bound refused: tells an operator which one to size (docs/operations.md).
        self.refused = Counter(
            "ranker_rank_refused",
            "Rank requests refused with RESOURCE_EXHAUSTED before ranking, by the bound they broke",
            ["bound"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "ranker_rank_degraded",
            "Rank answers that gave something up, by what (see docs/proto.md)",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ranker_rank_latency_seconds",
            "Rank time inside the server, validation to response",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ranker_rank_in_flight", "Rank requests being served", registry=self.registry
        )
        # Queueing in the event loop happens before the handler starts and after it ends, so
        # the latency histogram cannot show it; this is where a busy event loop shows it.
        self.loop_lag = Gauge(
            "ranker_event_loop_lag_seconds",
            "How late the event loop runs its timers lately (worst recent, decaying)",
            registry=self.registry,
        )
        # Under overload calls wait longest in gRPC core, before the process takes them up,
        # where neither the loop lag nor max_concurrent_rpcs sees them. The deadline runs from
        # the call's arrival: a client's timeout less this is how long its calls waited there.
        self.deadline_left = Histogram(
            "ranker_rank_deadline_left_seconds",
            "gRPC deadline left when the Rank handler started, for calls that carry one",
            buckets=DEADLINE_LEFT_BUCKETS_S,
            registry=self.registry,
        )
        # The budget's promise, seen from inside: an answer leaves the handler by its budget
        # less budget_margin_ms. One that leaves later (a stage that cannot be cut short ran
        # long, or the host paused the process) has less than the margin left for the way back
        # to its client; a count here says the margin or the budgets are too tight for the host.
        self.overrun = Histogram(
            "ranker_rank_overrun_seconds",
            "How far past its budget, less budget_margin_ms, a Rank answer left the handler; "
            "answers that left in time are not counted",
            buckets=OVERRUN_BUCKETS_S,
            registry=self.registry,
        )

        # A collection holds the GIL: every request in flight waits it out. A long one shows
        # in tail latency as a burst of late answers; this tells it from the host's stalls.
        self.gc_pause = Histogram(
            "ranker_gc_pause_seconds",
            "Python garbage collections by generation, and how long each held the process",
            ["generation"],
            buckets=GC_PAUSE_BUCKETS_S,
            registry=self.registry,
        )

    def watch_gc(self) -> None:
        """Times every garbage collection of this process from now on: once per process."""
        pauses = [self.gc_pause.labels(str(generation)) for generation in range(3)]
        started = 0.0

        def timed(phase: str, info: dict[str, int]) -> None:
            nonlocal started
            if phase == "start":
                started = time.perf_counter()
            else:
                pauses[info["generation"]].observe(time.perf_counter() - started)

        gc.callbacks.append(timed)

    def watch(self, cache: EmbeddingCache) -> None:
        self.registry.register(_CacheCollector(cache))

    def serve(self, port: int) -> None:
        """Serves /metrics over HTTP from a daemon thread, with the standard process metrics
        (process_cpu_seconds_total, process_resident_memory_bytes, ...) that the default
        registry would have: a worker's CPU per request is what sizes a deployment."""
        ProcessCollector(registry=self.registry)
        start_http_server(port, registry=self.registry)
