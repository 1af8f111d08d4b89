"""Versioned, reversible schema migrations for the box's and the hub's SQLite stores.

Each store kind ("box": the box's `replica.db`; "hub": the hub's `hub.db`) has a list of
migrations numbered 1, 2, 3 … Migration 1 is the baseline: the key-value table `blobs`
that `shared.storage.SqliteStorage` has always written. Each later migration is an `up`
and a `down` script of SQL. Applying one runs its `up` and records, in the same
transaction, a row of

    schema_migrations(store, version, name, down_sql, applied_at, applied_by)

**with its `down` script**. Rolling back runs the recorded `down` scripts newest first,
each in its own transaction with the removal of its row. Because the down step travels in
the database, any version of the code can undo what a newer one applied: `renkei update
rollback` (firmware/updates.py) returns the data to the schema the previous release knows
(`latest()` of that release, asked with its own interpreter; a release from before
migrations knows only the baseline) before switching `current` back.

Rules for a migration (so that the protocol and schema work one version apart during a
rolling update — a hub and a box, or two boxes, on neighbouring releases):

- **expand, then contract**: a release may add tables, columns and keys; it removes or
  renames only what the release before it had already stopped using. The previous
  release must be able to read and write a store the new one has migrated.
- **the down step loses nothing that matters**: it keeps data the newer release wrote in
  a form the up step restores (see hub migration 2: rows are parked as JSON in `blobs`
  under ("migration-stash", table, key) and brought back on the next upgrade).
- the down step never touches data the older release owns.

    python -m shared.migrations latest         {"box": N, "hub": M}, what this code knows
    renkei migrate status|up|down --data DIR   (renkei/commands/migrate.py)

Errors: `MigrationError` (a store newer than this code and no way down, a failed step —
rolled back, the store unchanged —, an unknown store kind).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TABLE = "schema_migrations"
BASELINE = 1
STORE_FILES = {"replica.db": "box", "hub.db": "hub"}


class MigrationError(Exception):
    """A migration could not be applied or undone; the store is as it was before."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up: str
    down: str


_BASELINE = Migration(
    BASELINE,
    "baseline: the key-value table of shared.storage",
    "CREATE TABLE IF NOT EXISTS [blobs] ([key] TEXT PRIMARY KEY, [data] BLOB);",
    "",  # never undone: every release reads and writes it
)

_ALERT_STATE = """
CREATE TABLE alert_state (
    key TEXT PRIMARY KEY,           -- rule:subject
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    level TEXT NOT NULL,            -- ok | warning | critical | unknown
    message TEXT NOT NULL,
    since REAL NOT NULL,            -- when this state began
    checked REAL NOT NULL           -- last evaluation
) WITHOUT ROWID;
"""

_ALERT_DOWN = "DROP TABLE alert_state;"

# Hub 2: enrolment. Tokens are stored hashed; a token row is consumed with one UPDATE
# (single use across processes); boxes by name, their sync peer id unique.
_ENROLMENT_UP = """
CREATE TABLE enrolment_settings (
    name TEXT PRIMARY KEY,          -- root (hex verify key), issuer (certificate JSON)
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE enrolment_tokens (
    token_hash TEXT PRIMARY KEY,    -- SHA-256 of the token, hex; the token itself is never kept
    box TEXT NOT NULL,
    town TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    used_by TEXT,                   -- the box key (hex) that used it
    revoked_at REAL,
    tls_sealed TEXT                 -- staged server.crt/key sealed to the issuer key, hex
) WITHOUT ROWID;
CREATE TABLE enrolled_boxes (
    box TEXT PRIMARY KEY,
    town TEXT NOT NULL,
    box_key TEXT NOT NULL,          -- Ed25519 verify key, hex
    sync_peer TEXT NOT NULL UNIQUE,
    certificate TEXT NOT NULL,      -- the box certificate (JSON, with its chain)
    binding TEXT NOT NULL,          -- box key's signature over its sync peer id, hex
    enrolled_at REAL NOT NULL,
    last_seen REAL,
    revoked_at REAL,
    revoked_reason TEXT
) WITHOUT ROWID;
"""
_COLUMNS = {
    "enrolment_settings": ("name", "name value"),
    "enrolment_tokens": (
        "token_hash",
        "token_hash box town issued_at expires_at used_at used_by revoked_at tls_sealed",
    ),
    "enrolled_boxes": (
        "box",
        "box town box_key sync_peer certificate binding enrolled_at last_seen revoked_at "
        "revoked_reason",
    ),
}
_STASH_RANGE = (
    "key > 'migration-stash' || char(31) || '{table}' || char(31)"
    " AND key < 'migration-stash' || char(31) || '{table}' || char(32)"
)


def _unstash(table: str, columns: str) -> str:
    """Bring back the rows an earlier down step parked in `blobs`."""
    values = ", ".join(f"json_extract(j, '$.{c}')" for c in columns.split())
    where = _STASH_RANGE.format(table=table)
    return (
        f"INSERT OR REPLACE INTO {table} SELECT {values} FROM "
        f"(SELECT json(CAST(data AS TEXT)) AS j FROM blobs WHERE {where});\n"
        f"DELETE FROM blobs WHERE {where};\n"
    )


def _stash(table: str, key_column: str, columns: str) -> str:
    """Park a table's rows in `blobs` as JSON under ("migration-stash", table, key)."""
    fields = ", ".join(f"'{c}', {c}" for c in columns.split())
    return (
        "INSERT OR REPLACE INTO blobs(key, data) SELECT 'migration-stash' || char(31) || "
        f"'{table}' || char(31) || {key_column}, CAST(json_object({fields}) AS BLOB) "
        f"FROM {table};\nDROP TABLE {table};\n"
    )


_ENROLMENT_UP += "".join(_unstash(t, cols) for t, (_, cols) in _COLUMNS.items())
_ENROLMENT_DOWN = "".join(_stash(t, key, cols) for t, (key, cols) in _COLUMNS.items())

MIGRATIONS: dict[str, tuple[Migration, ...]] = {
    "box": (
        _BASELINE,
        Migration(2, "alert state (logged once per change)", _ALERT_STATE, _ALERT_DOWN),
    ),
    "hub": (
        _BASELINE,
        Migration(2, "enrolment: tokens, enrolled boxes, settings", _ENROLMENT_UP, _ENROLMENT_DOWN),
        Migration(3, "alert state (logged once per change)", _ALERT_STATE, _ALERT_DOWN),
    ),
}


def latest() -> dict[str, int]:
    """The newest schema version this code knows, per store kind."""
    return {store: migrations[-1].version for store, migrations in MIGRATIONS.items()}


def store_kind(path: Path) -> str:
    try:
        return STORE_FILES[path.name]
    except KeyError as exc:
        raise MigrationError(f"{path}: not a store this code migrates") from exc


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    name: str
    applied_at: float
    applied_by: str


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (store TEXT NOT NULL, version INTEGER NOT NULL,"
            " name TEXT NOT NULL, down_sql TEXT NOT NULL, applied_at REAL NOT NULL,"
            " applied_by TEXT NOT NULL, PRIMARY KEY (store, version))"
        )
        yield connection
    finally:
        connection.close()


def _applied(connection: sqlite3.Connection, store: str) -> list[Applied]:
    rows = connection.execute(
        f"SELECT version, name, applied_at, applied_by FROM {TABLE} WHERE store = ?"
        " ORDER BY version",
        (store,),
    ).fetchall()
    return [Applied(*row) for row in rows]


def status(path: Path, store: str | None = None) -> list[Applied]:
    """The migrations recorded in the store at `path`, oldest first."""
    store = store or store_kind(path)
    with _connect(path) as connection:
        return _applied(connection, store)


def current_version(path: Path, store: str | None = None) -> int:
    applied = status(path, store)
    return applied[-1].version if applied else 0


def _script(connection: sqlite3.Connection, sql: str) -> None:
    """Run a multi-statement step inside the open transaction (executescript would
    commit it first)."""
    statement = ""
    for line in sql.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            connection.execute(statement)
            statement = ""
    if statement.strip():
        raise MigrationError(f"incomplete SQL statement in a migration: {statement[:80]!r}")


def apply(
    path: Path,
    store: str | None = None,
    *,
    migrations: Sequence[Migration] | None = None,
    by: str = "",
) -> list[int]:
    """Bring the store at `path` up to the newest schema this code knows; returns the
    versions applied. A store newer than this code is left alone (one version apart is
    supported by the expand/contract rule); each step is one transaction."""
    store = store or store_kind(path)
    steps = tuple(migrations if migrations is not None else MIGRATIONS[store])
    if by == "":
        from renkei import __version__

        by = f"renkei {__version__}"
    done = []
    with _connect(path) as connection:
        have = {a.version for a in _applied(connection, store)}
        for migration in steps:
            if migration.version in have:
                continue
            try:
                connection.execute("BEGIN IMMEDIATE")
                _script(connection, migration.up)
                connection.execute(
                    f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)",
                    (store, migration.version, migration.name, migration.down, time.time(), by),
                )
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                connection.execute("ROLLBACK")
                raise MigrationError(
                    f"{path}: migration {store} {migration.version} ({migration.name}) "
                    f"failed and was rolled back: {exc}"
                ) from exc
            done.append(migration.version)
    return done


def rollback(path: Path, to_version: int, store: str | None = None) -> list[int]:
    """Undo every recorded migration above `to_version`, newest first, with the down
    scripts recorded when they were applied. Returns the versions undone."""
    store = store or store_kind(path)
    if to_version < BASELINE:
        raise MigrationError(f"cannot roll back below the baseline ({BASELINE})")
    undone = []
    with _connect(path) as connection:
        rows = connection.execute(
            f"SELECT version, name, down_sql FROM {TABLE} WHERE store = ? AND version > ?"
            " ORDER BY version DESC",
            (store, to_version),
        ).fetchall()
        for version, name, down in rows:
            try:
                connection.execute("BEGIN IMMEDIATE")
                _script(connection, down)
                connection.execute(
                    f"DELETE FROM {TABLE} WHERE store = ? AND version = ?", (store, version)
                )
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                connection.execute("ROLLBACK")
                raise MigrationError(
                    f"{path}: undoing {store} {version} ({name}) failed; the store stays at "
                    f"version {version}: {exc}"
                ) from exc
            undone.append(version)
    return undone


def stores_in(data_dirs: Sequence[Path]) -> list[Path]:
    """The migratable stores found in these data folders."""
    return [d / name for d in data_dirs for name in STORE_FILES if (d / name).is_file()]


def main(argv: Sequence[str]) -> int:
    if list(argv) == ["latest"]:
        print(json.dumps(latest(), sort_keys=True))
        return 0
    print("usage: python -m shared.migrations latest", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
