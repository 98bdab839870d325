"""A request's latency budget as a monotonic deadline that every stage reads from, and the
estimates that let the ranker keep it: what the stages after embedding need, and how late the
event loop runs."""

from __future__ import annotations

import asyncio
import time


class Deadline:
    def __init__(self, budget_s: float, start: float | None = None) -> None:
        """`start`: a time.monotonic() reading, when the budget began before now."""
        self._end = (time.monotonic() if start is None else start) + budget_s

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() == 0.0

    def shortened(self, by_s: float) -> Deadline:
        """This deadline `by_s` earlier: when a stage must stop so that later ones fit."""
        return Deadline(max(0.0, self.remaining() - by_s))


class HighWaterMark:
    """How long something takes at worst lately: rises at once with a slow sample, and forgets
    it by `decay` per sample, so one garbage collection does not count forever."""

    def __init__(self, initial_s: float, decay: float = 0.99) -> None:
        self.value = initial_s
        self.decay = decay

    def observe(self, seconds: float) -> None:
        self.value = max(seconds, self.value * self.decay)


class LoopLag:
    """How late the event loop runs its timers: the queueing a request meets before its handler
    starts, which the handler cannot see from inside."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.lag = HighWaterMark(initial_s=0.0, decay=0.9)

    async def watch(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.interval_s)
            self.lag.observe(max(0.0, time.monotonic() - started - self.interval_s))
