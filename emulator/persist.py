"""Optional SQLite persistence (`--db PATH`): the in-memory store, written through.

The store stays the source of truth while running (all reads are served from memory); every
accepted write is committed here before the answer goes out, so a restart finds exactly what
clients were told was saved. One connection, used only from the event loop thread: the
single-threaded loop already serialises writers, and WAL keeps each commit cheap.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    pk INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    order_id TEXT NOT NULL,
    versions TEXT NOT NULL,
    deleted_at REAL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

Row = tuple[int, int, str, list[dict[str, Any]], float | None]


class SqliteFile:
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def load(self) -> tuple[list[Row], int]:
        rows: list[Row] = [
            (pk, integration_id, order_id, json.loads(versions), deleted_at)
            for pk, integration_id, order_id, versions, deleted_at in self.conn.execute(
                "SELECT pk, integration_id, order_id, versions, deleted_at FROM orders ORDER BY pk"
            )
        ]
        found = self.conn.execute("SELECT value FROM meta WHERE name = 'next_pk'").fetchone()
        next_pk = int(found[0]) if found else 1
        if rows:
            next_pk = max(next_pk, rows[-1][0] + 1)
        return rows, next_pk

    def save(self, rows: Iterable[Row], next_pk: int) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT OR REPLACE INTO orders (pk, integration_id, order_id, versions, deleted_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(pk, i, o, json.dumps(v, separators=(",", ":")), d) for pk, i, o, v, d in rows],
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('next_pk', ?)", (next_pk,)
            )

    def clear(self, next_pk: int) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM orders")
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('next_pk', ?)", (next_pk,)
            )

    def close(self) -> None:
        self.conn.close()
