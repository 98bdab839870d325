"""The slates the ranker issued, kept so that feedback can be matched to what was shown."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class IssuedEvent:
    user_id: str
    policy: str
    item_ids: tuple[str, ...]
    # The reward already credited per item, so repeated feedback never counts twice.
    rewarded: dict[str, float] = field(default_factory=dict)


class IssuedEvents:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._events: OrderedDict[str, IssuedEvent] = OrderedDict()

    def record(self, event: IssuedEvent) -> str:
        event_id = uuid.uuid4().hex
        self._events[event_id] = event
        while len(self._events) > self.capacity:
            self._events.popitem(last=False)
        return event_id

    def get(self, event_id: str) -> IssuedEvent | None:
        return self._events.get(event_id)
