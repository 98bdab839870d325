"""A request's latency budget as a monotonic deadline that every stage reads from."""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._end = time.monotonic() + budget_s

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() == 0.0
