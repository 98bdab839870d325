"""Merges the texts that concurrent requests need embedded into shared Triton calls.

A text already queued or in flight is not sent again: its waiters share one future. Results
land in the cache when the call completes, also when every waiter has given up on its budget,
so an embedding that arrives late still serves the next request. A cancelled request is
different: its caller is gone, so texts that no other request waits for are taken off the
queue, and a Triton call that nobody waits for any more is cancelled.

At most `max_calls` Triton calls run at once, so an overload (a cold cache, a slow Triton)
queues here, where a text is dropped once every request that wanted it has run out of budget,
instead of piling up unbounded work in Triton.

Each Triton call keeps a `BatchClock` (when it was sent, its texts tokenized, Triton answered),
so that a request can tell where its wait for embeddings went, and `recent` keeps whether the
recent calls answered in time for any request that wanted them, so that a request can tell
whether waiting is worth it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple

import numpy as np


@dataclass
class BatchClock:
    """time.perf_counter() readings of one Triton call; None until it happens."""

    dispatched: float | None = None
    tokenized: float | None = None
    answered: float | None = None

    def mark_tokenized(self) -> None:
        self.tokenized = time.perf_counter()


WAIT_STAGES = ("queue", "tokenize", "triton")


def wait_stages(clocks: Iterable[BatchClock], submitted: float, ended: float) -> dict[str, float]:
    """Milliseconds of a request's wait, from `submitted` to `ended`, spent queued here,
    tokenizing and in Triton, on the call that kept it waiting longest; time before the request
    came (a call already under way) counts to none. Empty without calls."""
    last = max(clocks, key=lambda clock: clock.answered or ended, default=None)
    if last is None:
        return {}
    points = [submitted]
    for moment in (last.dispatched, last.tokenized, last.answered):
        points.append(min(max(moment or ended, points[-1]), ended))
    return {
        stage: (end - start) * 1000.0
        for stage, (start, end) in zip(WAIT_STAGES, pairwise(points), strict=True)
    }


class RecentCalls:
    """Whether each of the last `window` Triton calls answered, or failed, before the last
    request that wanted its texts ran out of budget.

    When none did, waiting for the next call is futile: a slowed Triton would otherwise hold
    every request to the end of its budget for embeddings that cannot come, where the answer it
    degrades to is ready at once. One call in time makes requests wait again."""

    def __init__(self, window: int = 8) -> None:
        self._in_time: deque[bool] = deque(maxlen=window)

    def observe(self, in_time: bool) -> None:
        self._in_time.append(in_time)

    @property
    def futile(self) -> bool:
        return len(self._in_time) == self._in_time.maxlen and not any(self._in_time)


class Embedded(NamedTuple):
    vector: np.ndarray
    clock: BatchClock


# compute(texts, timeout_s, clock): the timeout is the longest time left among the chunk's
# requesters, plus a grace period in which a late answer still fills the cache; compute marks
# on the clock when its texts are tokenized.
Compute = Callable[[list[str], float, BatchClock], Awaitable[np.ndarray]]
Store = Callable[[str, np.ndarray], None]


class EmbeddingBatcher:
    def __init__(
        self,
        compute: Compute,
        store: Store,
        max_batch: int,
        max_wait_s: float,
        grace_s: float,
        max_calls: int,
    ) -> None:
        self.compute = compute
        self.store = store
        self.max_batch = max_batch
        self.max_calls = max_calls
        self.max_wait_s = max_wait_s
        self.grace_s = grace_s
        self.calls = 0
        self.recent = RecentCalls()
        self._pending: dict[str, asyncio.Future[Embedded]] = {}
        self._queue: list[str] = []
        self._wanted_until: dict[str, float] = {}
        # Requests waiting per text, and the Triton call each dispatched text is in, with its
        # clock.
        self._waiters: dict[str, int] = {}
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._clocks: dict[str, BatchClock] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, texts: Iterable[str], budget_s: float) -> dict[str, asyncio.Future[Embedded]]:
        """A future per distinct text; queued texts go out when a batch fills or the wait ends."""
        loop = asyncio.get_running_loop()
        until = time.monotonic() + budget_s
        futures = {}
        for text in texts:
            if until > self._wanted_until.get(text, 0.0) and text not in self._calls:
                self._wanted_until[text] = until
            self._waiters[text] = self._waiters.get(text, 0) + 1
            future = self._pending.get(text)
            if future is None:
                future = self._pending[text] = loop.create_future()
                # Nobody may be waiting any more when it fails; that is not an error to report.
                future.add_done_callback(_consume_exception)
                self._queue.append(text)
            futures[text] = future
        self._pump(partial=False)
        return futures

    def clock(self, text: str) -> BatchClock:
        """The clock of the Triton call `text` is in; a blank one while it is still queued."""
        return self._clocks.get(text) or BatchClock()

    def abandon(self, futures: dict[str, asyncio.Future[Embedded]]) -> None:
        """The request that got `futures` from `submit` was cancelled: drop the work only it
        wanted."""
        orphaned_calls = set()
        for text, future in futures.items():
            if future.done() or self._pending.get(text) is not future:
                continue
            waiters = self._waiters[text] - 1
            if waiters > 0:
                self._waiters[text] = waiters
                continue
            del self._waiters[text]
            call = self._calls.get(text)
            if call is not None:
                orphaned_calls.add(call)
            else:
                self._queue.remove(text)
                del self._wanted_until[text]
                self._pending.pop(text).cancel()
        for call in orphaned_calls:
            if not any(text in self._waiters for text in self._texts_of(call)):
                call.cancel()

    def _texts_of(self, call: asyncio.Task[None]) -> list[str]:
        return [text for text, running in self._calls.items() if running is call]

    def _pump(self, partial: bool) -> None:
        """Sends full batches while calls are free, and partial ones once the wait is over."""
        self._drop_expired()
        while (
            self._queue
            and len(self._tasks) < self.max_calls
            and (partial or len(self._queue) >= self.max_batch)
        ):
            self._dispatch()
        if not self._queue and self._flush is not None:
            self._flush.cancel()
            self._flush = None
        elif self._queue and self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.max_wait_s, self._flushed)

    def _flushed(self) -> None:
        self._flush = None
        self._pump(partial=True)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        expired = [text for text in self._queue if self._wanted_until[text] < now]
        for text in expired:
            self._queue.remove(text)
            del self._wanted_until[text]
            self._waiters.pop(text, None)
            self._pending.pop(text).cancel()

    def _dispatch(self) -> None:
        chunk, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        self.calls += 1
        until = max(self._wanted_until.pop(text) for text in chunk)
        timeout_s = max(0.0, until - time.monotonic()) + self.grace_s
        clock = BatchClock(dispatched=time.perf_counter())
        task = asyncio.get_running_loop().create_task(self._run(chunk, until, timeout_s, clock))
        self._tasks.add(task)
        task.add_done_callback(self._call_done)
        self._calls.update(dict.fromkeys(chunk, task))
        self._clocks.update(dict.fromkeys(chunk, clock))

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # What queued behind the busy calls has waited long enough: send it as it is.
        self._pump(partial=True)

    async def _run(
        self, chunk: list[str], until: float, timeout_s: float, clock: BatchClock
    ) -> None:
        """`until`: a time.monotonic() reading, when the last request that wants `chunk` gives
        up."""
        try:
            vectors = await self.compute(chunk, timeout_s, clock)
        except asyncio.CancelledError:
            self._settle(chunk, lambda _, future: future.cancel())
            raise
        except Exception as error:  # every waiter of this chunk must hear of it
            # A failure at once (Triton down) is news in time; a timeout is not.
            self.recent.observe(in_time=time.monotonic() <= until)
            self._settle(chunk, lambda _, future, error=error: future.set_exception(error))
            return
        clock.answered = time.perf_counter()
        self.recent.observe(in_time=time.monotonic() <= until)
        results = dict(zip(chunk, vectors, strict=True))
        for text, vector in results.items():
            self.store(text, vector)
        self._settle(chunk, lambda text, future: future.set_result(Embedded(results[text], clock)))

    def _settle(
        self, chunk: list[str], settle: Callable[[str, asyncio.Future[Embedded]], object]
    ) -> None:
        for text in chunk:
            del self._calls[text]
            del self._clocks[text]
            self._waiters.pop(text, None)
            settle(text, self._pending.pop(text))


def _consume_exception(future: asyncio.Future[Embedded]) -> None:
    if not future.cancelled():
        future.exception()
