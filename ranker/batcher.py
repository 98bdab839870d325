"""Merges the texts that concurrent requests need embedded into shared Triton calls.

A text already queued or in flight is not sent again: its waiters share one future. Results
land in the cache when the call completes, also when every waiter has given up on its budget,
so an embedding that arrives late still serves the next request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import numpy as np

# compute(texts, timeout_s): the timeout is the longest time left among the chunk's requesters,
# plus a grace period in which a late answer still fills the cache.
Compute = Callable[[list[str], float], Awaitable[np.ndarray]]
Store = Callable[[str, np.ndarray], None]


class EmbeddingBatcher:
    def __init__(
        self, compute: Compute, store: Store, max_batch: int, max_wait_s: float, grace_s: float
    ) -> None:
        self.compute = compute
        self.store = store
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.grace_s = grace_s
        self.calls = 0
        self._pending: dict[str, asyncio.Future[np.ndarray]] = {}
        self._queue: list[str] = []
        self._wanted_until: dict[str, float] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self, texts: Iterable[str], budget_s: float
    ) -> dict[str, asyncio.Future[np.ndarray]]:
        """A future per distinct text; queued texts go out when a batch fills or the wait ends."""
        loop = asyncio.get_running_loop()
        until = time.monotonic() + budget_s
        futures = {}
        for text in texts:
            if until > self._wanted_until.get(text, 0.0):
                self._wanted_until[text] = until
            future = self._pending.get(text)
            if future is None:
                future = self._pending[text] = loop.create_future()
                # Nobody may be waiting any more when it fails; that is not an error to report.
                future.add_done_callback(_consume_exception)
                self._queue.append(text)
            futures[text] = future
        while len(self._queue) >= self.max_batch:
            self._dispatch()
        if self._queue and self._flush is None:
            self._flush = loop.call_later(self.max_wait_s, self._dispatch_all)
        return futures

    def _dispatch_all(self) -> None:
        self._flush = None
        while self._queue:
            self._dispatch()

    def _dispatch(self) -> None:
        chunk, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        if not self._queue and self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.calls += 1
        until = max(self._wanted_until.pop(text) for text in chunk)
        timeout_s = max(0.0, until - time.monotonic()) + self.grace_s
        task = asyncio.get_running_loop().create_task(self._run(chunk, timeout_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, chunk: list[str], timeout_s: float) -> None:
        try:
            vectors = await self.compute(chunk, timeout_s)
        except Exception as error:  # every waiter of this chunk must hear of it
            for text in chunk:
                self._pending.pop(text).set_exception(error)
            return
        for text, vector in zip(chunk, vectors, strict=True):
            self.store(text, vector)
            self._pending.pop(text).set_result(vector)


def _consume_exception(future: asyncio.Future[np.ndarray]) -> None:
    if not future.cancelled():
        future.exception()
