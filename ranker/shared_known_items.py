"""Item texts shared by the worker processes of one ranker, in one SQLite file.

A client may send an item by id alone once any request carried its text, whichever worker that
request reached. SQLite (in the standard library, safe across processes, in WAL mode readers
never wait for a writer) holds the shared copy; each worker keeps its own in-memory LRU in front
of it, so the common request, whose items are already known, touches the file not at all: only
texts new to this worker are written, and only ids it has not seen are looked up.

An item's text is taken to be stable: a changed text reaches the other workers' id-only lookups
once they see it themselves. The file keeps the `capacity` most recently written items.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ranker.known_items import KnownItems

# A writer holds the lock for microseconds; waiting longer than this means the file is broken.
BUSY_TIMEOUT_MS = 1000


class SharedKnownItems:
    def __init__(self, path: Path, capacity: int) -> None:
        self.capacity = capacity
        self.local = KnownItems(capacity)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Texts are re-sent by clients and lost with the ranker anyway: no fsync per write.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, text TEXT NOT NULL)"
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM items").fetchone()[0]

    def remember(self, texts: dict[str, str]) -> None:
        local = self.local
        if local.knows(texts):
            local.refresh(texts)
            return
        new = [(item_id, text) for item_id, text in texts.items() if local.text(item_id) != text]
        local.remember(texts)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO items VALUES (?, ?) ON CONFLICT(item_id) DO UPDATE "
                "SET text = excluded.text WHERE text != excluded.text",
                new,
            )
            # Rowids grow with each insert: the oldest rows are the lowest.
            self._db.execute(
                "DELETE FROM items WHERE rowid <= (SELECT max(rowid) FROM items) - ?",
                (self.capacity,),
            )

    def text(self, item_id: str) -> str | None:
        text = self.local.text(item_id)
        if text is None:
            row = self._db.execute("SELECT text FROM items WHERE item_id = ?", (item_id,))
            found = row.fetchone()
            if found is not None:
                text = found[0]
                self.local.remember({item_id: text})
        return text

    def close(self) -> None:
        self._db.close()
