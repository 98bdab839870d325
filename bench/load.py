"""Open-loop gRPC load against the real ranker and the real Triton, in four scenarios.

Requests are built from real product titles (the committed sample of UCI Online Retail II):
50 history events, 100 candidates, top_k 10, budget 50 ms. Arrivals are Poisson at a fixed
rate and never wait for answers (open loop), so a slow server meets its full load. Per rate it
reports p50/p95/p99/max latency as the client sees it, the share past the budget, the share
degraded, the refusals (RESOURCE_EXHAUSTED) and, from the ranker's /metrics, how many of them
the handler gave (`by_handler`; the rest are gRPC's, past `--max-concurrent-rpcs`; a handler
refusal that reached the client after its deadline counts there as DEADLINE_EXCEEDED), other
errors, and the embedding cache hit rate (from /metrics too).

Scenarios: `warm` (every text cached; a rate sweep that finds the highest rate with p99 under
10 ms, and closed-loop saturation of Rank against a bare echo RPC on the same server; each rate
also runs, right after the ranker's, against bench/bare_ranker.py, the issue's yardstick, a bare
grpc.aio server that parses the request and scores from a dict: rows `bare`, and each warm row
notes its p99 as a ratio to the bare p99 at its rate, `p99_to_bare`, and the last Rank's
saturation as a ratio to the bare server's, `rank_to_bare`), `cold` (every text new), `slow`
(Triton's encoder sleeps `--slow-delay-ms` per batch, a config parameter) and `killed` (Triton
killed mid-run and restarted; recovery is the time from Triton being ready again to the last
answer that found it unavailable, and the degraded share from 5 s after that, beside a control
run of the same arrivals without the kill).

The generator runs in a process of its own, spawned before any clock starts: the scenario's own
work (killing and restarting Triton forks and polls) never stalls its event loop. Latency runs
from the moment a request is sent; how late the generator sent it (its event loop's own
lateness, which also delays stamping answers) is reported as `lag_p99` beside the generator's
CPU share `gen_cpu`, not hidden in the latency. `srv_p99` is the ranker's handler time
(`stage_ms` total) and `out_p99` the latency outside it: transport, gRPC and queueing in the
ranker's event loop. `srv_cpu` is the server's CPU time per request sent, in milliseconds: all
its processes and threads (the ranker's supervisor and workers, not Triton), from /proc over the
run; the warm rows note it as a ratio to the bare server's at the same rate, `cpu_to_bare`.
`host_busy` is the share of the host's cores busy over the run, whoever used them (the server,
the generator, Triton, the rest). Answers that waited for Triton add the p99 of each part of
that wait (`queue_p99_ms`, `tokenize_p99_ms`, `triton_p99_ms`, from `stage_ms`). Rare events in
the workers are noted where they happened: `handler_overruns`, answers that left the handler
past their budget less the margin (the server's share of the late ones),
`refused_by_queue_bound`, refusals of requests that had lost over `max_queued_share` of their
budget before the handler, and `gc_pauses_over_10ms`.
Triton runs `--triton-nice` below the ranker's CPU priority, as it should on a shared host
(docs/operations.md).

`--workers N` starts the ranker with N worker processes. The generator then balances per request
(gRPC round_robin over the workers' own ports, `--balance request`), or opens `--connections`
channels to the shared port and leaves the spread to the kernel (`--balance connection`), which
spreads connections, not requests, so a few busy connections can load one worker more.
Each ranker process holds at most `--max-concurrent-rpcs` RPCs (12: what it serves in about half
the 50 ms budget, so that the last one queued still has time to be answered); past that gRPC
refuses with RESOURCE_EXHAUSTED before the handler runs.

    python bench/load.py                      # all scenarios, results in bench/results/load.*
    python bench/load.py --scenarios warm --rates 300,500,700
    python bench/load.py --workers 2            # two ranker processes on the port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

import grpc
import numpy as np
import uvloop
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from launcher.ports import LOOPBACK, pick_free_port_run, pick_free_ports  # noqa: E402
from launcher.ranker_process import RankerProcess  # noqa: E402
from launcher.triton import TritonServer, die_with_parent  # noqa: E402
from ranker.batcher import WAIT_STAGES  # noqa: E402
from ranker.embeddings import ENCODER_UNAVAILABLE  # noqa: E402
from ranker.server import ECHO_METHOD  # noqa: E402
from ranker.v1 import ranker_pb2 as pb  # noqa: E402

RANK_METHOD = "/ranker.v1.Ranker/Rank"
ITEMS_CSV = ROOT / "demo" / "data" / "items.csv"
BARE_RANKER = ROOT / "bench" / "bare_ranker.py"
RESULTS = ROOT / "bench" / "results"
HISTORY, CANDIDATES, TOP_K, BUDGET_MS = 50, 100, 10, 50
P99_TARGET_MS = 10.0
LATE_MS = BUDGET_MS + 5.0
# A warming request's budget: long enough for Triton on the CPU to embed all of its texts.
WARM_UP_BUDGET_MS = 10_000
# Time for the generator process to receive a run's payloads and connect before its clock starts.
GENERATOR_SETUP_S = 1.0
EVENT_TYPES = (pb.EVENT_TYPE_VIEW, pb.EVENT_TYPE_CLICK, pb.EVENT_TYPE_PURCHASE)


@dataclass
class Sample:
    scheduled: float  # seconds from the run's start
    latency_ms: float  # from sending to the answer
    lag_ms: float  # how late the generator sent it: its own lateness, not the server's
    code: str
    degraded: tuple[str, ...]  # what the answer gave up; empty when nothing
    # The ranker's own time for it (stage_ms total); the rest is transport and queueing.
    server_ms: float
    # Where its wait for Triton went (stage_ms queue, tokenize, triton); empty when cached.
    wait_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Arrivals:
    """An open-loop run's schedule: Poisson arrivals at `rate` for `duration_s` from `start` (a
    perf_counter reading: the machine's monotonic clock, the same in every process), payloads
    used round robin."""

    payloads: Sequence[bytes]
    rate: float
    duration_s: float
    seed: int
    start: float
    connections: int


@dataclass
class Run:
    samples: list[Sample]
    # Share of one core the generator process used during the run.
    generator_cpu: float


@dataclass
class Row:
    scenario: str
    rate: float
    sent: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    past_budget: float
    late_over_budget_plus_5ms: int
    degraded: float
    errors: dict[str, int]
    # RESOURCE_EXHAUSTED given by the handler (the ranker's count; the rest of `refused` are
    # gRPC's bound; one that reached the client after its deadline is DEADLINE_EXCEEDED there).
    refused_by_handler: int
    cache_hit_rate: float
    generator_lag_p99_ms: float
    generator_cpu: float
    server_p99_ms: float
    outside_handler_p99_ms: float
    # The server's CPU milliseconds per request sent (server_cpu_s): the cost that, with the
    # generator's, sets how busy the host's cores are at a rate.
    server_cpu_ms: float
    # The share of the host's cores busy over the run, whoever used them: past about half,
    # queueing sets p99; near all, the generator too waits for a core and stamps answers late.
    host_busy: float
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def refused(self) -> int:
        """RESOURCE_EXHAUSTED: shedding load, the answer the issue asks for under overload."""
        return self.errors.get("RESOURCE_EXHAUSTED", 0)

    @property
    def other_errors(self) -> int:
        return sum(self.errors.values()) - self.refused


def interpreter() -> dict[str, object]:
    """The Python that runs the servers (they start with this one). Builds differ: pyenv's
    default one (libpython shared, no --enable-optimizations) runs the handler with about 8% more
    instructions than Debian's python3.11 (docs/operations.md, Process tuning), so runs on
    different builds do not compare."""
    maps = Path("/proc/self/maps")
    return {
        "version": sys.version.split()[0],
        "executable": sys.executable,
        "libpython_shared": "libpython" in maps.read_text() if maps.exists() else None,
    }


def load_titles(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as handle:
        return [(row["item_id"], row["text"]) for row in csv.DictReader(handle)]


def build_requests(
    titles: Sequence[tuple[str, str]], count: int, seed: int, fresh: int = 0, tag: str = ""
) -> list[bytes]:
    """`fresh` texts per request (history first, then candidates) are new to every cache."""
    rng = random.Random(seed)
    now = int(time.time())
    payloads = []
    for n in range(count):
        picked = rng.sample(titles, HISTORY + CANDIDATES)
        items = []
        for i, (item_id, text) in enumerate(picked):
            if i < fresh:
                item_id, text = f"{item_id}-{tag}{n}", f"{text} {tag}{n}"
            items.append(pb.Item(item_id=item_id, text=text))
        history = []
        for i, item in enumerate(items[:HISTORY]):
            event = pb.BehaviorEvent(item=item, type=rng.choice(EVENT_TYPES))
            event.time.seconds = now - 3600 * (HISTORY - i)
            history.append(event)
        request = pb.RankRequest(
            user_id=f"user-{n % 500}",
            history=history,
            candidates=items[HISTORY:],
            top_k=TOP_K,
            budget_ms=BUDGET_MS,
        )
        payloads.append(request.SerializeToString())
    return payloads


async def _call(
    stub: grpc.aio.UnaryUnaryMultiCallable, payload: bytes, scheduled: float, samples: list
) -> None:
    sent = time.perf_counter()
    try:
        # As a production caller would: a deadline of the budget plus the lateness allowed.
        answer = await stub(payload, timeout=LATE_MS / 1000.0)
        response = pb.RankResponse.FromString(answer)
        code, degraded, server_ms = "OK", tuple(response.degraded), response.stage_ms["total"]
        waits = {
            stage: response.stage_ms[stage] for stage in WAIT_STAGES if stage in response.stage_ms
        }
    except grpc.aio.AioRpcError as error:
        code, degraded, server_ms, waits = error.code().name, (), float("nan"), {}
    done = time.perf_counter()
    samples.append(
        Sample(
            scheduled,
            (done - sent) * 1000.0,
            (sent - scheduled) * 1000.0,
            code,
            degraded,
            server_ms,
            waits,
        )
    )


def channel_options(target: str) -> list[tuple[str, object]]:
    """Each channel its own connections (as separate clients would open); a target of several
    addresses (the workers' own ports) is balanced per request."""
    options: list[tuple[str, object]] = [("grpc.use_local_subchannel_pool", 1)]
    if "," in target:
        options.append(("grpc.lb_policy_name", "round_robin"))
    return options


@contextlib.asynccontextmanager
async def connections(target: str, method: str, count: int) -> AsyncIterator[list]:
    """`count` stubs over channels of their own, all connected: ranker workers sharing the port
    each serve their own connections."""
    channels = [
        grpc.aio.insecure_channel(target, options=channel_options(target)) for _ in range(count)
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 5.0)
        yield [channel.unary_unary(method) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()


async def open_loop(address: str, arrivals: Arrivals) -> list[Sample]:
    rate, duration_s, start = arrivals.rate, arrivals.duration_s, arrivals.start
    payloads = arrivals.payloads
    rng = np.random.default_rng(arrivals.seed)
    offsets = np.cumsum(rng.exponential(1.0 / rate, size=int(rate * duration_s * 1.5) + 10))
    offsets = offsets[offsets < duration_s]
    samples: list[Sample] = []
    # Connected before the clock starts.
    async with connections(address, RANK_METHOD, arrivals.connections) as stubs:
        # The generator's own collections would stall sends and answers and be counted as the
        # server's latency; it collects after the run instead.
        gc.disable()
        try:
            tasks = []
            for i, offset in enumerate(offsets.tolist()):
                delay = start + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                payload = payloads[i % len(payloads)]
                call = _call(stubs[i % len(stubs)], payload, start + offset, samples)
                tasks.append(asyncio.ensure_future(call))
            await asyncio.gather(*tasks)
        finally:
            gc.enable()
    for sample in samples:
        sample.scheduled -= start
    return samples


@dataclass(frozen=True)
class ClosedLoop:
    """A saturation run: `concurrency` callers over `connections` channels, each sending as soon
    as it is answered, for `duration_s`."""

    target: str
    method: str
    payloads: Sequence[bytes]
    concurrency: int
    duration_s: float
    connections: int


@dataclass(frozen=True)
class Throughput:
    answered_rps: float
    # Requests refused with RESOURCE_EXHAUSTED (the ranker shedding load), per second.
    refused_rps: float


async def saturate(run: ClosedLoop) -> Throughput:
    """Closed-loop throughput. A refused request is not an answer: its caller sends the next."""
    answered = refused = 0
    payloads = run.payloads
    async with connections(run.target, run.method, run.connections) as stubs:
        end = time.perf_counter() + run.duration_s

        async def caller(offset: int) -> None:
            nonlocal answered, refused
            i = offset
            stub = stubs[offset % len(stubs)]
            while time.perf_counter() < end:
                try:
                    await stub(payloads[i % len(payloads)], timeout=5.0)
                    answered += 1
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    refused += 1
                i += run.concurrency

        start = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(run.concurrency)))
        elapsed = time.perf_counter() - start
        return Throughput(answered / elapsed, refused / elapsed)


def generate(address: str, arrivals: Arrivals) -> Run:
    """The generator process's side of `Stack.start`."""
    cpu = time.process_time()
    samples = uvloop.run(open_loop(address, arrivals))
    busy_s = time.process_time() - cpu
    return Run(samples, busy_s / max(time.perf_counter() - arrivals.start, arrivals.duration_s))


def connect(address: str) -> None:
    """Sets up gRPC's asyncio machinery in the generator process, so that a run's own setup
    before its clock starts is short."""

    async def ready() -> None:
        async with grpc.aio.insecure_channel(address, options=channel_options(address)) as channel:
            await asyncio.wait_for(channel.channel_ready(), 5.0)

    asyncio.run(ready())


def saturation(run: ClosedLoop) -> Throughput:
    """The generator process's side of `Stack.saturate`."""
    return uvloop.run(saturate(run))


class RankerCounts(NamedTuple):
    """Counters summed over the workers' metrics ports."""

    cache_hits: float
    cache_misses: float
    # Rank requests the handler refused (RESOURCE_EXHAUSTED); gRPC's own refusals past
    # max_concurrent_rpcs never reach it.
    handler_refused: float
    # Garbage collections that held a worker for over LONG_GC_S.
    long_gc_pauses: float
    # Answers that left the handler past their budget less the margin
    # (ranker_rank_overrun_seconds): the server's own share of the late ones.
    overruns: float
    # Of handler_refused, those that had lost over max_queued_share of their budget when the
    # handler started (ranker_rank_refused_total{bound="max_queued_share"}).
    queue_bound_refused: float


LONG_GC_S = "0.01"  # a bucket bound of ranker_gc_pause_seconds
LONG_GC_NOTE = f"gc_pauses_over_{float(LONG_GC_S) * 1000:.0f}ms"


def ranker_counts(metrics_ports: Sequence[int]) -> RankerCounts:
    counts = Counter[str]()
    for port in metrics_ports:
        url = f"http://{LOOPBACK}:{port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels = sample.name, sample.labels
                if name == "ranker_embedding_cache_lookups_total":
                    counts[labels["result"]] += sample.value
                elif (
                    name == "ranker_rank_requests_total" and labels["code"] == "RESOURCE_EXHAUSTED"
                ):
                    counts["refused"] += sample.value
                elif name == "ranker_gc_pause_seconds_count":
                    counts["long_gc"] += sample.value
                elif name == "ranker_gc_pause_seconds_bucket" and labels["le"] == LONG_GC_S:
                    counts["long_gc"] -= sample.value
                elif name == "ranker_rank_overrun_seconds_count":
                    counts["overruns"] += sample.value
                elif name == "ranker_rank_refused_total" and labels["bound"] == "max_queued_share":
                    counts["queue_bound"] += sample.value
    return RankerCounts(
        counts["hit"],
        counts["miss"],
        counts["refused"],
        counts["long_gc"],
        counts["overruns"],
        counts["queue_bound"],
    )


def server_cpu_s(roots: Collection[int]) -> float:
    """CPU seconds (user and system, every thread) that these processes and all their living
    descendants have used so far, from /proc."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Past the command name, which may hold spaces: state, ppid, ..., utime, stime.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])
    total, pending = 0, list(roots)
    while pending:
        pid = pending.pop()
        total += ticks.get(pid, 0)
        pending.extend(children.get(pid, ()))
    return total / os.sysconf("SC_CLK_TCK")


class CpuReading(NamedTuple):
    """CPU seconds used so far: by the server's processes, and by the host's cores busy and in
    all (/proc/stat; idle and waiting for I/O are not busy)."""

    server_s: float
    host_busy_s: float
    host_s: float


def read_cpu(server_pids: Collection[int]) -> CpuReading:
    # user, nice, system, idle, iowait, irq, softirq, steal (guest time is in user already)
    ticks = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    idle = ticks[3] + ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return CpuReading(server_cpu_s(server_pids), (sum(ticks) - idle) / hz, sum(ticks) / hz)


def summarise(
    scenario: str,
    rate: float,
    run: Run,
    counts: tuple[RankerCounts, RankerCounts],
    cpu: tuple[CpuReading, CpuReading],
) -> Row:
    """`counts` and `cpu` as read before the run's clock started and after its last answer."""
    samples = run.samples
    latencies = np.array([s.latency_ms for s in samples])
    ok = [s for s in samples if s.code == "OK"]
    before, after = counts
    hits = after.cache_hits - before.cache_hits
    lookups = hits + after.cache_misses - before.cache_misses
    cpu_before, cpu_after = cpu
    host_s = cpu_after.host_s - cpu_before.host_s
    return Row(
        scenario=scenario,
        rate=rate,
        sent=len(samples),
        p50_ms=float(np.percentile(latencies, 50)),
        p95_ms=float(np.percentile(latencies, 95)),
        p99_ms=float(np.percentile(latencies, 99)),
        max_ms=float(latencies.max()),
        past_budget=float((latencies > BUDGET_MS).mean()),
        late_over_budget_plus_5ms=int((latencies > LATE_MS).sum()),
        degraded=sum(bool(s.degraded) for s in ok) / max(len(ok), 1),
        errors=dict(Counter(s.code for s in samples if s.code != "OK")),
        refused_by_handler=int(after.handler_refused - before.handler_refused),
        cache_hit_rate=hits / lookups if lookups else math.nan,  # nan: no cache (bare)
        generator_lag_p99_ms=float(np.percentile([s.lag_ms for s in samples], 99)),
        generator_cpu=run.generator_cpu,
        server_p99_ms=_p99([s.server_ms for s in ok]),
        outside_handler_p99_ms=_p99([s.latency_ms - s.server_ms for s in ok]),
        server_cpu_ms=(cpu_after.server_s - cpu_before.server_s) * 1000.0 / max(len(samples), 1),
        host_busy=(cpu_after.host_busy_s - cpu_before.host_busy_s) / host_s if host_s else math.nan,
        notes=wait_notes(ok) | counted_notes(before, after),
    )


def counted_notes(before: RankerCounts, after: RankerCounts) -> dict[str, float]:
    """The workers' rare events during the run, where there were any."""
    counted = {
        LONG_GC_NOTE: after.long_gc_pauses - before.long_gc_pauses,
        "handler_overruns": after.overruns - before.overruns,
        "refused_by_queue_bound": after.queue_bound_refused - before.queue_bound_refused,
    }
    return {name: count for name, count in counted.items() if count}


def wait_notes(answers: Sequence[Sample]) -> dict[str, float]:
    """p99 of each part of the wait for Triton, over the answers that waited for it."""
    notes = {}
    for stage in WAIT_STAGES:
        waits = [s.wait_ms[stage] for s in answers if stage in s.wait_ms]
        if waits:
            notes[f"{stage}_p99_ms"] = _p99(waits)
    return notes


def _p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


class LoadTarget(ABC):
    """A server under load on loopback ports, and the load generator in a process of its own,
    sending over `connections`. Subclasses start and stop the server."""

    # Where the server's /metrics are read (RankerCounts); none for a server without them.
    metrics_ports: Sequence[int] = ()

    def __init__(self, args: argparse.Namespace) -> None:
        self.connections = args.connections
        # Spawned, not forked: a fork would copy this process's gRPC and Triton client state.
        self.generator = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    @property
    @abstractmethod
    def address(self) -> str:
        """The generator's gRPC target."""

    @property
    @abstractmethod
    def server_pids(self) -> Collection[int]:
        """The server's processes, whose trees' CPU time `server_cpu_s` reads."""

    @abstractmethod
    def start_servers(self) -> None: ...

    @abstractmethod
    def stop_servers(self) -> None:
        """Stops what `start_servers` started, also when it failed part way."""

    def __enter__(self) -> Self:
        try:
            self.start_servers()
            self.generator.submit(connect, self.address).result()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_servers()
        self.generator.shutdown()

    def start(
        self, payloads: Sequence[bytes], rate: float, duration_s: float, seed: int
    ) -> tuple[Future[Run], float]:
        """An open-loop run in the generator process, and the moment its clock starts."""
        start = time.perf_counter() + GENERATOR_SETUP_S
        arrivals = Arrivals(payloads, rate, duration_s, seed, start, self.connections)
        return self.generator.submit(generate, self.address, arrivals), arrivals.start

    def run(
        self, scenario: str, payloads: Sequence[bytes], rate: float, duration_s: float, seed: int
    ) -> Row:
        before = ranker_counts(self.metrics_ports)
        future, start = self.start(payloads, rate, duration_s, seed)
        _sleep_until(start)
        cpu = read_cpu(self.server_pids)
        run = future.result()
        counts = (before, ranker_counts(self.metrics_ports))
        return summarise(scenario, rate, run, counts, (cpu, read_cpu(self.server_pids)))

    def saturate(
        self, method: str, payloads: Sequence[bytes], concurrency: int, duration_s: float
    ) -> Throughput:
        """Closed-loop requests per second of `method`, from the generator process."""
        run = ClosedLoop(self.address, method, payloads, concurrency, duration_s, self.connections)
        return self.generator.submit(saturation, run).result()

    def warm_up(self, payloads: Sequence[bytes]) -> None:
        """Each request once over each connection, with a budget long enough for Triton to embed
        every text into the cache of every ranker worker (the bare server keeps each text's
        vector from its first sight)."""

        async def each() -> None:
            async with connections(self.address, RANK_METHOD, self.connections) as stubs:
                for stub in stubs:
                    for payload in payloads:
                        request = pb.RankRequest.FromString(payload)
                        request.budget_ms = WARM_UP_BUDGET_MS
                        await stub(request.SerializeToString(), timeout=15.0)

        asyncio.run(each())


def balanced(ports: Sequence[int]) -> str:
    """The gRPC target that balances per request over these loopback ports."""
    if len(ports) == 1:
        return f"{LOOPBACK}:{ports[0]}"
    return "ipv4:" + ",".join(f"{LOOPBACK}:{port}" for port in ports)


class Stack(LoadTarget):
    """Triton and a ranker (`workers` processes), Triton restartable in place."""

    def __init__(self, repository: Path, args: argparse.Namespace) -> None:
        super().__init__(args)
        grpc_port, http_port, metrics_port = pick_free_ports(3)
        self.triton = TritonServer(
            repository,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            niceness=args.triton_nice,
        )
        first_metrics_port = pick_free_port_run(args.workers)
        self.metrics_ports = range(first_metrics_port, first_metrics_port + args.workers)
        self.repository = repository
        self.workers = args.workers
        self.ranker_args = [
            "--echo-rpc",
            "yes",
            "--metrics-port",
            str(first_metrics_port),
            "--workers",
            str(args.workers),
            "--max-concurrent-rpcs",
            str(args.max_concurrent_rpcs),
        ]
        self.worker_port_base = 0
        if args.workers > 1 and args.balance == "request":
            self.worker_port_base = pick_free_port_run(args.workers)
            self.ranker_args += ["--worker-port-base", str(self.worker_port_base)]
        self.ranker: RankerProcess | None = None

    def start_servers(self) -> None:
        self.triton.start()
        self.ranker = RankerProcess(
            self.triton.grpc_url, self.repository, extra_args=self.ranker_args
        ).start()

    def stop_servers(self) -> None:
        if self.ranker is not None:
            self.ranker.stop()
        self.triton.stop()

    @property
    def server_pids(self) -> Collection[int]:
        return [self.ranker.pid]

    @property
    def address(self) -> str:
        """The generator's gRPC target: the shared port, or every worker's own port."""
        if not self.worker_port_base:
            return self.ranker.address
        return balanced(range(self.worker_port_base, self.worker_port_base + self.workers))


class BareServers(LoadTarget):
    """bench/bare_ranker.py, `workers` processes on ports of their own, balanced per request."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.ports = pick_free_ports(args.workers)
        self.max_concurrent_rpcs = args.max_concurrent_rpcs
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        return balanced(self.ports)

    @property
    def server_pids(self) -> Collection[int]:
        return [process.pid for process in self.processes]

    def start_servers(self) -> None:
        for port in self.ports:
            command = [sys.executable, str(BARE_RANKER), "--port", str(port)]
            command += ["--max-concurrent-rpcs", str(self.max_concurrent_rpcs)]
            # A session of its own, as the ranker's: where the kernel shares the CPU between
            # sessions first (autogroup), both then meet the generator's session alike.
            self.processes.append(
                subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent)
            )
        for port, process in zip(self.ports, self.processes, strict=True):
            with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=30.0)
                except grpc.FutureTimeoutError:
                    raise RuntimeError(
                        f"{BARE_RANKER.name} on port {port} did not start "
                        f"(exit code {process.poll()})"
                    ) from None

    def stop_servers(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait()


def sweep(
    targets: Mapping[str, LoadTarget], payloads: Sequence[bytes], args: argparse.Namespace
) -> list[Row]:
    """Warms each target, then runs every rate on each in turn (printing each row), so that a
    change in the host's speed during the sweep reaches them alike, then saturates Rank on each.
    Rows are named after their target; the last of each notes its saturation and the highest
    rate that held p99 under 10 ms."""
    for target in targets.values():
        target.warm_up(payloads)
    rows: dict[str, list[Row]] = {name: [] for name in targets}
    for rate in args.rates:
        for name, target in targets.items():
            rows[name].append(target.run(name, payloads, rate, args.duration, seed=int(rate)))
            print(format_row(rows[name][-1]), flush=True)
    for name, target in targets.items():
        rank = target.saturate(RANK_METHOD, payloads, args.concurrency, args.duration)
        held = [row.rate for row in rows[name] if row.p99_ms < P99_TARGET_MS and not row.errors]
        rows[name][-1].notes.update(
            {
                "rank_saturation_rps": rank.answered_rps,
                "rank_saturation_refused_rps": rank.refused_rps,
                "highest_rate_p99_under_10ms": max(held, default=0.0),
            }
        )
    return [row for name in targets for row in rows[name]]


def scenario_warm(args: argparse.Namespace, titles: list[tuple[str, str]]) -> list[Row]:
    """The ranker, and the bare server beside it as the yardstick, rate by rate."""
    payloads = build_requests(titles, args.requests, seed=1)
    with Stack(args.repository, args) as stack, BareServers(args) as bare:
        rows = sweep({"warm": stack, "bare": bare}, payloads, args)
        echo = stack.saturate(ECHO_METHOD, payloads, args.concurrency, args.duration)
    notes = [row for row in rows if row.scenario == "warm"][-1].notes
    notes["echo_saturation_rps"] = echo.answered_rps
    notes["rank_to_echo"] = notes["rank_saturation_rps"] / echo.answered_rps
    against_bare(rows)
    return rows


def against_bare(rows: Sequence[Row]) -> None:
    """Notes the ranker's figures as ratios to the bare server's in the same run: each warm
    row's p99 and CPU per request over the bare server's at its rate, and Rank's saturation
    over the bare server's."""
    bare = [row for row in rows if row.scenario == "bare"]
    warm = [row for row in rows if row.scenario == "warm"]
    if not bare or not warm:
        return
    bare_at = {row.rate: row for row in bare}
    for row in warm:
        if row.rate in bare_at:
            row.notes["p99_to_bare"] = row.p99_ms / bare_at[row.rate].p99_ms
            row.notes["cpu_to_bare"] = row.server_cpu_ms / bare_at[row.rate].server_cpu_ms
    saturation = "rank_saturation_rps"
    warm[-1].notes["rank_to_bare"] = warm[-1].notes[saturation] / bare[-1].notes[saturation]


def scenario_cold(args: argparse.Namespace, titles: list[tuple[str, str]]) -> list[Row]:
    count = int(args.cold_rate * args.duration) + 10
    payloads = build_requests(titles, count, seed=2, fresh=HISTORY + CANDIDATES, tag="cold")
    with Stack(args.repository, args) as stack:
        stack.warm_up(build_requests(titles, 1, seed=9))  # model discovered
        return [stack.run("cold", payloads, args.cold_rate, args.duration, seed=2)]


def scenario_slow(args: argparse.Namespace, titles: list[tuple[str, str]]) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="load-slow-") as scratch:
        repository = Path(scratch) / "repository"
        shutil.copytree(args.repository, repository)
        config = repository / "bert_encoder" / "config.pbtxt"
        config.write_text(
            config.read_text() + f'parameters {{\n  key: "delay_ms"\n  value: {{ string_value: '
            f'"{args.slow_delay_ms}" }}\n}}\n'
        )
        warm = build_requests(titles, args.requests, seed=1)
        count = int(args.fault_rate * args.duration) + 10
        payloads = build_requests(titles, count, seed=3, fresh=args.fresh, tag="slow")
        with Stack(repository, args) as stack:
            stack.warm_up(warm[:20])
            return [stack.run("slow", payloads, args.fault_rate, args.duration, seed=3)]


def scenario_killed(args: argparse.Namespace, titles: list[tuple[str, str]]) -> list[Row]:
    """The same arrivals run twice: first as a control, Triton left alone, then with Triton
    killed and restarted. Poisson arrivals come in bursts, and on a CPU Triton the fresh texts
    of a burst can miss their budget whether or not Triton was restarted (at the defaults, seed
    4's arrivals end with 42 in their last 0.25 s, against 25 on average), so the degraded
    share after recovery is read against the control's over the same stretch of the schedule.
    Each run has fresh texts of its own."""
    duration = max(args.duration, 15.0)
    count = int(args.fault_rate * duration) + 10
    payloads = build_requests(titles, count, seed=4, fresh=args.fresh, tag="kill")
    control_payloads = build_requests(titles, count, seed=4, fresh=args.fresh, tag="control")
    with Stack(args.repository, args) as stack:
        stack.warm_up(build_requests(titles, args.requests, seed=1))
        control = stack.start(control_payloads, args.fault_rate, duration, seed=4)[0].result()
        before = ranker_counts(stack.metrics_ports)
        future, start = stack.start(payloads, args.fault_rate, duration, seed=4)
        _sleep_until(start)
        cpu = read_cpu(stack.server_pids)
        _sleep_until(start + duration * 0.25)
        killed = time.perf_counter() - start
        stack.triton.kill()
        _sleep_until(start + duration * 0.4)
        stack.triton.start()
        ready = time.perf_counter() - start
        run = future.result()
        counts = (before, ranker_counts(stack.metrics_ports))
        row = summarise("killed", args.fault_rate, run, counts, (cpu, read_cpu(stack.server_pids)))
    row.notes.update(recovery(run.samples, killed, ready, control.samples))
    return [row]


def recovery(
    samples: Sequence[Sample], killed: float, ready: float, control: Sequence[Sample]
) -> dict[str, float]:
    """How the killed run came back: from Triton ready again to the last answer that found it
    unavailable, and the degraded shares around it (seconds from the run's start), beside the
    control run's share over the same stretch of the same arrivals."""
    unavailable_after = [
        s.scheduled for s in samples if ENCODER_UNAVAILABLE in s.degraded and s.scheduled > ready
    ]

    def degraded_share(keep: Callable[[Sample], bool], run: Sequence[Sample] = samples) -> float:
        kept = [s for s in run if s.code == "OK" and keep(s)]
        return sum(bool(s.degraded) for s in kept) / max(len(kept), 1)

    return {
        "killed_at_s": killed,
        "ready_again_at_s": ready,
        "recovered_after_ready_s": max(unavailable_after, default=ready) - ready,
        # With new texts in every request, CPU Triton degrades some answers even when healthy
        # (encoder_timeout): recovery means getting back to the share that the same arrivals
        # get without the kill (the control's), not to none.
        "degraded_before_kill": degraded_share(lambda s: s.scheduled < killed),
        "degraded_5s_after_ready": degraded_share(lambda s: s.scheduled > ready + 5),
        "control_degraded_5s_after_ready": degraded_share(
            lambda s: s.scheduled > ready + 5, control
        ),
    }


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.perf_counter()))


SCENARIOS: dict[str, Callable[[argparse.Namespace, list[tuple[str, str]]], list[Row]]] = {
    "warm": scenario_warm,
    "cold": scenario_cold,
    "slow": scenario_slow,
    "killed": scenario_killed,
}

# Column names and alignments: one word each, so that the CSV has a column per printed value.
COLUMNS = (
    ("scenario", "<8"),
    ("rate", ">7"),
    ("sent", ">7"),
    ("p50", ">8"),
    ("p95", ">8"),
    ("p99", ">8"),
    ("max", ">8"),
    (">budget", ">9"),
    (">b+5ms", ">8"),
    ("degraded", ">10"),
    ("refused", ">9"),
    ("by_handler", ">11"),
    ("errors", ">8"),
    ("hit_rate", ">10"),
    ("lag_p99", ">9"),
    ("gen_cpu", ">9"),
    ("srv_p99", ">9"),
    ("out_p99", ">9"),
    ("srv_cpu", ">9"),
    ("host_busy", ">11"),
)
HEADER = "".join(f"{name:{alignment}}" for name, alignment in COLUMNS)


def format_row(row: Row) -> str:
    return (
        f"{row.scenario:<8}{row.rate:>7.0f}{row.sent:>7}{row.p50_ms:>8.2f}{row.p95_ms:>8.2f}"
        f"{row.p99_ms:>8.2f}{row.max_ms:>8.1f}{row.past_budget:>9.2%}"
        f"{row.late_over_budget_plus_5ms:>8}{row.degraded:>10.1%}"
        f"{row.refused:>9}{row.refused_by_handler:>11}{row.other_errors:>8}"
        f"{row.cache_hit_rate:>10.1%}"
        f"{row.generator_lag_p99_ms:>9.2f}"
        f"{row.generator_cpu:>9.0%}{row.server_p99_ms:>9.2f}{row.outside_handler_p99_ms:>9.2f}"
        f"{row.server_cpu_ms:>9.2f}{row.host_busy:>11.0%}"
    )


def _rates(text: str) -> list[float]:
    return [float(rate) for rate in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rates", type=_rates, default=_rates("250,500,750,1000"))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--requests", type=int, default=200, help="distinct warm requests")
    parser.add_argument("--concurrency", type=int, default=32, help="saturation callers")
    parser.add_argument("--cold-rate", type=float, default=20.0)
    parser.add_argument("--fault-rate", type=float, default=100.0)
    parser.add_argument(
        "--fresh", type=int, default=1, help="new texts per request in the fault scenarios"
    )
    parser.add_argument("--slow-delay-ms", type=int, default=200)
    parser.add_argument(
        "--triton-nice", type=int, default=10, help="Triton's CPU priority below the ranker's"
    )
    parser.add_argument("--workers", type=int, default=1, help="ranker processes on the port")
    parser.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=12,
        help="each ranker process's bound on RPCs held at once (docs/operations.md); 0 for none",
    )
    parser.add_argument("--connections", type=int, default=8, help="the generator's gRPC channels")
    parser.add_argument(
        "--balance",
        choices=("request", "connection"),
        default="request",
        help="with workers: round_robin over their own ports, or the kernel's spread of "
        "connections over the shared port",
    )
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--items", type=Path, default=ITEMS_CSV)
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {sorted(SCENARIOS)}")
    # The encoder must exist: export it unless the newest version is current.
    subprocess.run(
        [sys.executable, "-m", "export", "--skip-if-current", "--repository", str(args.repository)],
        check=True,
        cwd=ROOT,
    )
    titles = load_titles(args.items)
    python = interpreter()
    print(f"python: {python}", flush=True)
    print(f"ranker workers: {args.workers}, balance: {args.balance}", flush=True)
    print(HEADER, flush=True)
    rows: list[Row] = []
    for name in args.scenarios.split(","):
        scenario_rows = SCENARIOS[name](args, titles)
        for row in scenario_rows if name != "warm" else []:  # the sweep prints as it goes
            print(format_row(row), flush=True)
        rows.extend(scenario_rows)
    for row in rows:
        for key, value in row.notes.items():
            print(f"{row.scenario} {row.rate:.0f}/s: {key} = {value:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    run = {
        "workers": args.workers,
        "balance": args.balance,
        "connections": args.connections,
        "max_concurrent_rpcs": args.max_concurrent_rpcs,
        "python": python,
    }
    report = {"run": run, "rows": [asdict(row) for row in rows]}
    (RESULTS / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    with (RESULTS / "load.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(name for name, _ in COLUMNS)
        writer.writerows(format_row(row).split() for row in rows)
    print(f"results: {RESULTS / 'load.json'}, {RESULTS / 'load.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
