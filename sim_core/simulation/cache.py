"""On-disk result cache (SQLite in workspace/cache): a repeated comparison costs no model call.

Keys cover everything that changes a result: base model fingerprint and dtype, adapter
fingerprint, the exact prompt(s), the mode and its parameters. One connection per call, so
Streamlit threads and several processes can read and write at the same time.

The cache only saves time, so it never stops a simulation: a damaged file ("file is not a
database") is moved aside and rebuilt, and a cache that cannot be opened or written (disk
full, read-only workspace) is skipped; both with a warning on the `sim_core` logger (the CLI
prints it as "warning: ...").
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from sim_core.base.errors import SimError
from sim_core.base.workspace import subdir
from sim_core.base.writing import reason

CACHE_FILE = "results.sqlite"
SCHEMA = ("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
          "created TEXT DEFAULT CURRENT_TIMESTAMP)")
log = logging.getLogger(__name__)
_DAMAGED = ("file is not a database", "database disk image is malformed")


class CacheUnavailable(SimError):
    """The result cache cannot be opened or written (the simulation goes on without it)."""


def cache_path() -> Path:
    """workspace/cache/results.sqlite."""
    return subdir("cache") / CACHE_FILE


def cache_key(**parts: Any) -> str:
    """sha256 hex of the JSON of all parts (sorted keys): model, adapter, prompts, mode, params."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_damaged(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.DatabaseError) and any(t in str(error) for t in _DAMAGED)


class ResultCache:
    """Key -> JSON value store; every call opens and closes its own connection.

    Raises (from the constructor):
        CacheUnavailable: the file cannot be opened or created (read-only, disk full).
    """

    def __init__(self, path: Path | None = None):
        try:
            self.path = Path(path) if path is not None else cache_path()
        except SimError as error:          # the cache folder cannot be made (read-only ...)
            raise CacheUnavailable(str(error)) from None
        try:
            self._create()
        except sqlite3.Error as error:
            if not _is_damaged(error):
                raise self._unavailable(error) from error
            self._move_aside(error)
            try:
                self._create()
            except sqlite3.Error as again:
                raise self._unavailable(again) from again

    def _create(self) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute(SCHEMA)
            connection.execute("SELECT COUNT(*) FROM results LIMIT 1").fetchone()

    def _unavailable(self, error: BaseException) -> CacheUnavailable:
        return CacheUnavailable(f"The result cache {self.path} cannot be used: "
                                f"{reason(error)}.")

    def _move_aside(self, error: sqlite3.Error) -> None:
        """Rename a damaged database (and its WAL files) so that a fresh one can be built."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(self.path) + suffix)
                if part.exists():
                    part.rename(Path(str(aside) + suffix))
        except OSError as move_error:
            raise self._unavailable(move_error) from error
        log.warning("The result cache %s was damaged (%s); it was moved aside to %s and a new "
                    "one was started (earlier results will be simulated again).",
                    self.path, error, aside)

    def _connect(self) -> sqlite3.Connection:
        """A fresh connection; waits for writers instead of failing at once."""
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        except sqlite3.Error:
            connection.close()
            raise
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


def open_cache() -> ResultCache | None:
    """The workspace's result cache, or None (with a warning) when it cannot be used."""
    try:
        return ResultCache()
    except CacheUnavailable as error:
        log.warning("%s Simulating without the cache.", error)
        return None


def cached_values(cache: ResultCache | None, keys: list[str]) -> dict[str, dict]:
    """cache.get_many(keys); {} (with a warning) when the cache fails while reading."""
    if cache is None:
        return {}
    try:
        return cache.get_many(keys)
    except (sqlite3.Error, ValueError) as error:
        log.warning("The result cache %s could not be read (%s); simulating without it.",
                    cache.path, reason(error))
        return {}


def store_values(cache: ResultCache | None, items: dict[str, dict]) -> None:
    """cache.put_many(items); a failed write (disk full, read-only) only warns: the results
    are complete, they are just not kept for next time."""
    if cache is None:
        return
    try:
        cache.put_many(items)
    except sqlite3.Error as error:
        log.warning("Results were not saved in the cache %s: %s.", cache.path, reason(error))
