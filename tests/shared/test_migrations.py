"""Schema migrations: a store written by the previous schema (plain SqliteStorage, the
release before migrations) is upgraded, used, rolled back with the down steps recorded in
it, and read again by the older code — nothing it wrote lost, nothing new left behind
except what the next upgrade restores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shared import migrations
from shared.migrations import Migration, MigrationError
from shared.storage import SqliteStorage


def _schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as connection:
        return sorted(
            connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )


def _previous_release_store(path: Path) -> dict[tuple[str, ...], bytes]:
    storage = SqliteStorage(path)  # what every release so far has written
    items = {("15307", "blob", f"doc-{i}"): f"sealed {i}".encode() for i in range(20)}
    storage.save_many(items.items())
    storage.close()
    return items


def _read_all(path: Path) -> dict[tuple[str, ...], bytes]:
    storage = SqliteStorage(path)
    try:
        return dict(storage.load_range(()))
    finally:
        storage.close()


def test_hub_store_upgrades_rolls_back_and_the_older_code_still_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    written = _previous_release_store(path)
    before = _schema(path)

    assert migrations.apply(path) == [1, 2, 3]  # the baseline is recorded, not changed
    assert migrations.current_version(path) == migrations.latest()["hub"] == 3
    assert migrations.apply(path) == []  # applied at every start: idempotent
    # the newer release uses its tables
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO enrolled_boxes (box, town, box_key, sync_peer, certificate, binding,"
            " enrolled_at) VALUES ('seiro-1', '15307', 'aa', 'ed25519:bb', '{}', 'cc', 1.5)"
        )
        connection.execute(
            "INSERT INTO enrolment_tokens (token_hash, box, town, issued_at, expires_at)"
            " VALUES ('ff', 'seiro-2', '15307', 1.0, 2.0)"
        )
    # one version apart: the previous release's reader works on the migrated store
    assert _read_all(path) == written

    assert migrations.rollback(path, migrations.BASELINE) == [3, 2]
    assert migrations.current_version(path) == migrations.BASELINE
    older = _read_all(path)
    stash = {k: v for k, v in older.items() if k[0] == "migration-stash"}
    assert {k: v for k, v in older.items() if k[0] != "migration-stash"} == written
    assert sorted(k[1:] for k in stash) == [
        ("enrolled_boxes", "seiro-1"),
        ("enrolment_tokens", "ff"),
    ]
    tables = {name for name, _ in _schema(path)}
    assert not tables & {"enrolled_boxes", "enrolment_tokens", "alert_state"}
    assert [row for row in _schema(path) if row[0] != migrations.TABLE] == before

    # upgrading again brings the parked rows back, and the stash leaves the KV table
    assert migrations.apply(path) == [2, 3]
    with sqlite3.connect(path) as connection:
        assert connection.execute(
            "SELECT box, town, sync_peer, enrolled_at, last_seen FROM enrolled_boxes"
        ).fetchall() == [("seiro-1", "15307", "ed25519:bb", 1.5, None)]
        assert connection.execute("SELECT box, expires_at FROM enrolment_tokens").fetchall() == [
            ("seiro-2", 2.0)
        ]
    assert _read_all(path) == written


def test_box_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "replica.db"
    written = _previous_release_store(path)
    assert migrations.apply(path) == [1, 2]
    assert [a.version for a in migrations.status(path)] == [1, 2]
    assert migrations.rollback(path, 1) == [2]
    assert _read_all(path) == written
    assert "alert_state" not in {name for name, _ in _schema(path)}


def test_a_failing_step_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "replica.db"
    written = _previous_release_store(path)
    broken = (
        *migrations.MIGRATIONS["box"],
        Migration(3, "broken", "CREATE TABLE t (x);\nINSERT INTO nowhere VALUES (1);", ""),
    )
    with pytest.raises(MigrationError, match="rolled back"):
        migrations.apply(path, "box", migrations=broken)
    assert migrations.current_version(path) == 2  # the good steps before it stay
    assert "t" not in {name for name, _ in _schema(path)}
    assert _read_all(path) == written


def test_the_down_step_comes_from_the_store_not_the_code(tmp_path: Path) -> None:
    """Older code that never heard of a migration can still undo it."""
    path = tmp_path / "replica.db"
    newer = (
        *migrations.MIGRATIONS["box"],
        Migration(3, "from the future", "CREATE TABLE future (x);", "DROP TABLE future;"),
    )
    migrations.apply(path, "box", migrations=newer)
    assert migrations.apply(path) == []  # this code leaves a newer store alone
    assert migrations.rollback(path, 2) == [3]
    assert "future" not in {name for name, _ in _schema(path)}
    with pytest.raises(MigrationError, match="baseline"):
        migrations.rollback(path, 0)
