"""A request's latency budget as a monotonic deadline that every stage reads from, and the
estimates that let the ranker keep it: what the stages after embedding need, and how late the
event loop runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Deadline:
    def __init__(self, budget_s: float, start: float | None = None) -> None:
        """`start`: a time.monotonic() reading, when the budget began before now."""
        self._end = (time.monotonic() if start is None else start) + budget_s

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() == 0.0

    def overrun(self) -> float:
        """How long ago this deadline passed; 0 while it has not."""
        return max(0.0, time.monotonic() - self._end)

    def shortened(self, by_s: float) -> Deadline:
        """This deadline `by_s` earlier: when a stage must stop so that later ones fit."""
        return Deadline(max(0.0, self.remaining() - by_s))


class HighWaterMark:
    """How long something takes at worst lately: rises at once with a slow sample and forgets
    it with time, halving every `half_life_s`, down to `floor_s`.

    Forgetting by time, not by sample: admission refuses while the estimate exceeds the budget,
    a refused request adds no sample, so an estimate that only decayed per sample would keep
    refusing after one stall (a pause of the whole process) for as long as traffic lasted."""

    def __init__(
        self,
        floor_s: float,
        half_life_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor_s = floor_s
        self.half_life_s = half_life_s
        self._clock = clock
        self._peak = floor_s
        self._at = clock()

    @property
    def value(self) -> float:
        elapsed = self._clock() - self._at
        return max(self.floor_s, self._peak * 0.5 ** (elapsed / self.half_life_s))

    def observe(self, seconds: float) -> None:
        self._peak = max(seconds, self.value)
        self._at = self._clock()


class LoopLag:
    """How late the event loop runs its timers: the queueing a request meets before its handler
    starts, which the handler cannot see from inside."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        # Sampled every interval_s; a stall is forgotten within a few dozen samples.
        self.lag = HighWaterMark(floor_s=0.0, half_life_s=7 * interval_s)
        # The same lateness remembered for a second: how late a timer may fire while other
        # requests keep the loop busy in bursts, which the sample at hand can miss.
        self.worst = HighWaterMark(floor_s=0.0, half_life_s=1.0)

    async def watch(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.interval_s)
            late = max(0.0, time.monotonic() - started - self.interval_s)
            self.lag.observe(late)
            self.worst.observe(late)
