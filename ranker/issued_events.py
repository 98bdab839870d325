"""The slates the ranker issued, kept so that feedback can be matched to what was shown.

Each event keeps the shown items' embeddings and the user's interest as they were ranked, which
is what contextual policies learn from. Bounded in bytes, oldest first out: memory stays flat
whatever top_k and traffic are.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class IssuedEvent:
    user_id: str
    policy: str
    item_ids: tuple[str, ...]
    # One row per shown item, in slate order.
    vectors: np.ndarray
    interest: np.ndarray | None
    # The request pinned the policy (`Slate.pinned`): a meta-policy did not draw it.
    pinned: bool = False
    # The reward already credited per item, so repeated feedback never counts twice.
    rewarded: dict[str, float] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        interest = 0 if self.interest is None else self.interest.nbytes
        return self.vectors.nbytes + interest + 64 * (1 + len(self.item_ids))


class IssuedEvents:
    def __init__(self, max_bytes: int, prefix: str = "") -> None:
        """`prefix` starts every event id: a worker's, so feedback finds the worker that
        issued the event (workers.py)."""
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.bytes = 0
        self._events: OrderedDict[str, IssuedEvent] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def record(self, event: IssuedEvent) -> str:
        # 128 random bits, unguessable like uuid4's 122, without building a UUID object.
        event_id = self.prefix + os.urandom(16).hex()
        self._events[event_id] = event
        self.bytes += event.nbytes
        while self.bytes > self.max_bytes and self._events:
            _, forgotten = self._events.popitem(last=False)
            self.bytes -= forgotten.nbytes
        return event_id

    def get(self, event_id: str) -> IssuedEvent | None:
        return self._events.get(event_id)
