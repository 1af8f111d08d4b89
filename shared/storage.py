"""The storage seam: documents and blobs persist through four byte-moving operations.

    load(key) -> bytes | None        save(key, data)
    load_range(prefix) -> [(key, data)]   remove(key)
    save_many([(key, data), ...])     (all or nothing)

A key is a tuple of strings, e.g. ("15307", "registry", "shard-03", "snapshot"); a prefix
is a shorter tuple and matches every key that starts with it. Nothing here knows what the
bytes mean: the registry, the sync subsystem and the encrypting wrapper sit on top.

Implementations:
- `MemoryStorage`: a dict; what boxes use until they hold sealed blobs, and the reference
  the conformance test (tests/shared/storage_conformance.py) checks others against.
- `SqliteStorage`: one SQLite table through sqlite-utils, written by one writer in WAL
  mode; the hub's data folder (the cloud centre may hold plaintext, a box never does).

Errors: `StorageError` (bad key) is the only exception this module raises itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import sqlite_utils

StorageKey = tuple[str, ...]

_SEPARATOR = "\x1f"  # unit separator: cannot appear in a key part (checked)
_AFTER_SEPARATOR = "\x20"


class StorageError(Exception):
    """A key that cannot be stored (empty, or with an empty or separator-bearing part)."""


class Storage(Protocol):
    def load(self, key: StorageKey) -> bytes | None: ...

    def save(self, key: StorageKey, data: bytes) -> None: ...

    def load_range(self, prefix: StorageKey) -> list[tuple[StorageKey, bytes]]: ...

    def remove(self, key: StorageKey) -> None: ...

    def save_many(self, items: Iterable[tuple[StorageKey, bytes]]) -> None:
        """Several saves that land together or not at all (an import never half-applies)."""
        ...


def check_key(key: StorageKey) -> None:
    if not key:
        raise StorageError("empty storage key")
    for part in key:
        if not isinstance(part, str) or not part or _SEPARATOR in part:
            raise StorageError(f"invalid storage key part {part!r}")


def _matches(key: StorageKey, prefix: StorageKey) -> bool:
    return key[: len(prefix)] == prefix


class MemoryStorage:
    def __init__(self) -> None:
        self._data: dict[StorageKey, bytes] = {}
        self._lock = threading.Lock()

    def load(self, key: StorageKey) -> bytes | None:
        check_key(key)
        with self._lock:
            return self._data.get(key)

    def save(self, key: StorageKey, data: bytes) -> None:
        check_key(key)
        with self._lock:
            self._data[key] = bytes(data)

    def load_range(self, prefix: StorageKey) -> list[tuple[StorageKey, bytes]]:
        for part in prefix:
            check_key((part,))
        with self._lock:
            return sorted((k, v) for k, v in self._data.items() if _matches(k, prefix))

    def remove(self, key: StorageKey) -> None:
        check_key(key)
        with self._lock:
            self._data.pop(key, None)

    def save_many(self, items: Iterable[tuple[StorageKey, bytes]]) -> None:
        staged = []
        for key, data in items:
            check_key(key)
            staged.append((key, bytes(data)))
        with self._lock:
            self._data.update(staged)


BUSY_TIMEOUT_S = 60.0


class SqliteStorage:
    """Keys are joined with a separator that no part may contain, so a prefix scan is a
    range scan on the primary key: [prefix + SEP, prefix + the character after SEP)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A box has several writers in separate processes (town workers, the sync agent,
        # the front's audit); a long apply in one may hold the write lock for seconds on a
        # loaded machine, so wait for it well beyond sqlite3's default of 5 s.
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._db = sqlite_utils.Database(self._conn)
        self._lock = threading.Lock()
        if "blobs" not in self._db.table_names():
            self._db["blobs"].create({"key": str, "data": bytes}, pk="key")  # type: ignore[union-attr]

    def load(self, key: StorageKey) -> bytes | None:
        check_key(key)
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM blobs WHERE key = ?", (_SEPARATOR.join(key),)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def save(self, key: StorageKey, data: bytes) -> None:
        # Through the same IMMEDIATE transaction as save_many: sqlite-utils' upsert is an
        # INSERT OR IGNORE then an UPDATE, which under another process's write could fail
        # half-way with "database is locked" (seen on boxes under load).
        self.save_many([(key, data)])

    def load_range(self, prefix: StorageKey) -> list[tuple[StorageKey, bytes]]:
        for part in prefix:
            check_key((part,))
        if prefix:
            low = _SEPARATOR.join(prefix)
            query = "SELECT key, data FROM blobs WHERE (key = ? OR (key > ? AND key < ?))"
            args: tuple[str, ...] = (low, low + _SEPARATOR, low + _AFTER_SEPARATOR)
        else:
            query, args = "SELECT key, data FROM blobs WHERE 1", ()
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY key", args).fetchall()
        return sorted((tuple(k.split(_SEPARATOR)), bytes(v)) for k, v in rows)

    def remove(self, key: StorageKey) -> None:
        check_key(key)
        with self._lock:
            self._conn.execute("DELETE FROM blobs WHERE key = ?", (_SEPARATOR.join(key),))

    def save_many(self, items: Iterable[tuple[StorageKey, bytes]]) -> None:
        """Several saves in one transaction: all land or none do."""
        rows = []
        for key, data in items:
            check_key(key)
            rows.append({"key": _SEPARATOR.join(key), "data": bytes(data)})
        with self._lock, self._conn:
            # IMMEDIATE: take the write lock first (waiting out the busy timeout). A deferred
            # BEGIN whose first statement reads fails at once with "database is locked"
            # when another process (a town worker, the sync agent) wrote in between.
            self._conn.execute("BEGIN IMMEDIATE")
            self._db["blobs"].upsert_all(rows, pk="key")  # type: ignore[union-attr]

    def close(self) -> None:
        self._conn.close()
