"""Several ranker processes on one port, for more Rank requests than one core serves.

One Python event loop ranks one request at a time. `--workers N` starts N whole rankers (each
its own event loop, Triton client, batcher, embedding cache and policies) bound to the same port
with SO_REUSEPORT: the kernel spreads connections, not requests, over them, so a client reaches
every worker only through several connections (or a balancing proxy in front).

What the workers share:
- item texts, so an id sent with its text to one worker may come back alone to any other
  (SharedKnownItems, one SQLite file in the run directory);
- feedback: event ids start with the issuing worker's name, and a worker that receives feedback
  for another's event forwards it over that worker's Unix socket, so it always reaches the
  policies that placed the slate.
What they do not share: the embedding cache (each warms its own) and what the policies learned
(each learns from the feedback on its own slates; policy seeds differ by worker).

The supervisor (this process) starts the workers, forwards SIGTERM and SIGINT to them, and when
one dies stops the others and exits 1, so that the orchestrator restarts a whole ranker.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.synchronize import Barrier
from pathlib import Path

import grpc

from ranker.known_items import ItemTexts, load_catalogue_setting
from ranker.settings import Settings
from ranker.shared_known_items import SharedKnownItems
from ranker.v1 import ranker_pb2, ranker_pb2_grpc

ITEMS_FILE = "items.sqlite"
# Every worker must be up within this, or the ranker does not report SERVING.
START_TIMEOUT_S = 60.0
# Forwarded feedback without a gRPC deadline of its own waits at most this.
FORWARD_TIMEOUT_S = 5.0
# After SIGTERM, how long past its own drain a worker may take before it is killed.
STOP_SLACK_S = 5.0
_EVENT_OWNER = re.compile(r"w(\d+)-")


@dataclass(frozen=True)
class Worker:
    index: int
    count: int
    run_dir: Path
    supervisor_pid: int
    # Passed by every worker once it serves: none reports SERVING before all do.
    started: Barrier

    @property
    def event_prefix(self) -> str:
        return f"w{self.index}-"

    def socket(self, index: int) -> str:
        return f"unix:{self.run_dir / f'worker-{index}.sock'}"

    def owner(self, event_id: str) -> int | None:
        """The worker that issued the event, or None for one issued by no worker of this run."""
        match = _EVENT_OWNER.match(event_id)
        index = int(match.group(1)) if match else -1
        return index if 0 <= index < self.count else None

    def settings(self, settings: Settings) -> Settings:
        """Its own metrics port (the next ones after the first worker's) and policy seed."""
        metrics_port = settings.metrics_port + self.index if settings.metrics_port else 0
        return dataclasses.replace(
            settings, metrics_port=metrics_port, seed=settings.seed + self.index
        )

    async def all_started(self) -> None:
        try:
            await asyncio.to_thread(self.started.wait, START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            raise RuntimeError(
                f"not all {self.count} workers started within {START_TIMEOUT_S:.0f} s"
            ) from None


class FeedbackForwarder:
    """Sends feedback on to the worker that issued the event."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stubs: dict[int, ranker_pb2_grpc.RankerStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def owner_elsewhere(self, event_id: str) -> int | None:
        owner = self.worker.owner(event_id)
        return None if owner == self.worker.index else owner

    async def forward(
        self, owner: int, request: ranker_pb2.FeedbackRequest, time_left_s: float | None
    ) -> None:
        """Raises the owner's gRPC error as it came."""
        stub = self._stubs.get(owner)
        if stub is None:
            channel = grpc.aio.insecure_channel(self.worker.socket(owner))
            self._channels.append(channel)
            stub = self._stubs[owner] = ranker_pb2_grpc.RankerStub(channel)
        timeout = FORWARD_TIMEOUT_S if time_left_s is None else time_left_s
        await stub.Feedback(request, timeout=timeout)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


# Serves one ranker in this process until SIGTERM; 0 when it stopped cleanly.
ServeOne = Callable[[Settings, ItemTexts, "Worker"], int]


def serve_workers(settings: Settings, serve_one: ServeOne) -> int:
    """Runs `settings.workers` rankers until SIGTERM or SIGINT; 1 when one of them died."""
    run_dir = Path(tempfile.mkdtemp(prefix="ranker-"))
    try:
        store = SharedKnownItems(run_dir / ITEMS_FILE, settings.known_items)
        load_catalogue_setting(store, settings.catalogue)
        store.close()
        context = multiprocessing.get_context("spawn")
        started = context.Barrier(settings.workers)
        workers = [
            context.Process(
                target=run_worker,
                args=(
                    serve_one,
                    settings,
                    Worker(index, settings.workers, run_dir, os.getpid(), started),
                ),
                name=f"ranker-worker-{index}",
            )
            for index in range(settings.workers)
        ]
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        for process in workers:
            process.start()
        ended: list = []
        while not stop.is_set() and not ended:
            ended = wait([p.sentinel for p in workers], timeout=0.2)
        # By the sentinel, not is_alive(): a worker's pipe closes before its exit is reaped.
        died = [p.name for p in workers if p.sentinel in ended]
        for process in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in workers:
            process.join(STOP_SLACK_S + 5.0)
            if process.is_alive():
                process.kill()
                process.join()
        if died and not stop.is_set():
            print(f"error: {', '.join(died)} exited; stopped the others", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_worker(serve_one: ServeOne, settings: Settings, worker: Worker) -> None:
    _die_with(worker.supervisor_pid)
    store = SharedKnownItems(worker.run_dir / ITEMS_FILE, settings.known_items)
    try:
        if serve_one(worker.settings(settings), store, worker) != 0:
            worker.started.abort()
            sys.exit(1)
    finally:
        store.close()


def _die_with(supervisor_pid: int) -> None:
    """A worker must not outlive its supervisor, keeping the port (Linux: PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
        if os.getppid() != supervisor_pid:  # it died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
