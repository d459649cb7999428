"""On-disk result cache (SQLite in workspace/cache): a repeated comparison costs no model call.

Keys cover everything that changes a result: base model fingerprint and dtype, adapter
fingerprint, the exact prompt(s), the mode and its parameters. One connection per call, so
Streamlit threads and several processes can read and write at the same time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sim_core.workspace import subdir

CACHE_FILE = "results.sqlite"
SCHEMA = ("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
          "created TEXT DEFAULT CURRENT_TIMESTAMP)")


def cache_path() -> Path:
    """workspace/cache/results.sqlite."""
    return subdir("cache") / CACHE_FILE


def cache_key(**parts: Any) -> str:
    """sha256 hex of the JSON of all parts (sorted keys): model, adapter, prompts, mode, params."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResultCache:
    """Key -> JSON value store; every call opens and closes its own connection."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_path()
        with closing(self._connect()) as connection, connection:
            connection.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        """A fresh connection; waits for writers instead of failing at once."""
        connection = sqlite3.connect(self.path, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        return connection

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """Stored values of the keys that are present."""
        found: dict[str, dict] = {}
        with closing(self._connect()) as connection:
            for start in range(0, len(keys), 500):  # SQLite's parameter limit
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, value FROM results WHERE key IN ({marks})", chunk)
                found.update({key: json.loads(value) for key, value in rows})
        return found

    def get(self, key: str) -> dict | None:
        """The stored value, or None."""
        return self.get_many([key]).get(key)

    def put_many(self, items: dict[str, dict]) -> None:
        """Store (or replace) several values in one transaction."""
        if not items:
            return
        with closing(self._connect()) as connection, connection:
            connection.executemany(
                "INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                [(key, json.dumps(value)) for key, value in items.items()])

    def put(self, key: str, value: dict) -> None:
        """Store one value."""
        self.put_many({key: value})

    def clear(self) -> int:
        """Delete everything; returns the number of entries removed."""
        with closing(self._connect()) as connection, connection:
            return connection.execute("DELETE FROM results").rowcount

    def __len__(self) -> int:
        with closing(self._connect()) as connection:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
