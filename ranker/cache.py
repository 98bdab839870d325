"""An LRU embedding cache bounded in bytes, keyed by model version and text.

Keying by model version means a new encoder version starts a fresh namespace: embeddings of
two versions never mix in one ranking.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np


class EmbeddingCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, version: str, text: str) -> np.ndarray | None:
        return self.get_many(version, (text,))[0]

    def get_many(self, version: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """One lookup per text, None where missing: a request's texts in one call."""
        entries = self._entries
        found = [entries.get((version, text)) for text in texts]
        hits = 0
        for text, vector in zip(texts, found, strict=True):
            if vector is not None:
                entries.move_to_end((version, text))
                hits += 1
        self.hits += hits
        self.misses += len(found) - hits
        return found

    def put(self, version: str, text: str, vector: np.ndarray) -> None:
        key = (version, text)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        if vector.nbytes > self.max_bytes:
            return
        vector.setflags(write=False)
        self._entries[key] = vector
        self.bytes += vector.nbytes
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.nbytes
