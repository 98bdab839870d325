"""An LRU embedding cache bounded in bytes, keyed by model version and text.

Keying by model version means a new encoder version starts a fresh namespace: embeddings of
two versions never mix in one ranking. Each version keeps its own LRU keyed by text alone (a
lookup builds no key tuple: a request looks up a hundred texts or more), and a version not used
lately loses its entries before the one being served.

Vectors are kept as the bytes of their float32 rows (the encoder's output type): a request's
hundred-odd rows then join in one C call that reads each row's header next to its data, where
arrays would each be asked for a buffer (embeddings.stacked).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from itertools import repeat
from operator import is_

import numpy as np


class EmbeddingCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        # Texts per version, least recently used first, and versions in the same order.
        self._versions: OrderedDict[str, OrderedDict[str, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return sum(map(len, self._versions.values()))

    def get(self, version: str, text: str) -> np.ndarray | None:
        row = self.get_many(version, (text,))[0]
        return None if row is None else np.frombuffer(row, dtype=np.float32)

    def get_many(self, version: str, texts: Sequence[str]) -> list[bytes | None]:
        """One lookup per text, the float32 row's bytes or None where missing: a request's texts
        in one call."""
        entries = self._versions.get(version)
        if entries is None:
            self.misses += len(texts)
            return [None] * len(texts)
        self._versions.move_to_end(version)
        found = list(map(entries.get, texts))
        missing = sum(map(is_, found, repeat(None)))
        hits = texts
        if missing:
            hits = [text for text, vector in zip(texts, found, strict=True) if vector is not None]
        # A request looks up a hundred texts or more: touching them runs in C.
        deque(map(entries.move_to_end, hits), maxlen=0)
        self.hits += len(found) - missing
        self.misses += missing
        return found

    def put(self, version: str, text: str, vector: np.ndarray) -> None:
        # A new version counts as just used; otherwise only lookups do: a late answer for a
        # retired version must not push out the served one's entries.
        entries = self._versions.setdefault(version, OrderedDict())
        old = entries.pop(text, None)
        if old is not None:
            self.bytes -= len(old)
        row = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        if len(row) <= self.max_bytes:
            entries[text] = row
            self.bytes += len(row)
        self._evict()

    def _evict(self) -> None:
        """Least recently used first, of the least recently used version first."""
        while self._versions:
            version, entries = next(iter(self._versions.items()))
            if entries and self.bytes <= self.max_bytes:
                return
            if entries:
                _, evicted = entries.popitem(last=False)
                self.bytes -= len(evicted)
            else:
                del self._versions[version]
