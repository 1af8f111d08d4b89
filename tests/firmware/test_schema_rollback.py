"""`renkei update rollback` returns the data to the schema the previous version knows
before switching back: a store written by the release before migrations is upgraded by
the running version, then rolled back with the down steps recorded in it, and the older
code reads all of it. A previous version that knows the schema keeps it unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared import migrations
from shared.storage import SqliteStorage

ITEMS = {("15307", "blob", f"doc-{i}"): f"sealed {i}".encode() for i in range(5)}


def _layout(root: Path, previous_python: str | None) -> None:
    """/opt/renkei-like layout: versions/old (previous) and versions/new (current). The
    old venv's python is a fresh venv without Renkei (a release from before migrations),
    or this interpreter (a release that knows them)."""
    for version in ("0.1.0", "0.2.0"):
        target = root / "versions" / version
        if version == "0.1.0" and previous_python is not None:
            (target / "bin").mkdir(parents=True)
            wrapper = target / "bin" / "python"
            wrapper.write_text(f'#!/bin/sh\nexec "{previous_python}" "$@"\n')
            wrapper.chmod(0o755)
        else:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    (root / "current").symlink_to(Path("versions") / "0.2.0")
    (root / "previous").symlink_to(Path("versions") / "0.1.0")


def _box_data(folder: Path) -> Path:
    store = folder / "replica.db"
    storage = SqliteStorage(store)  # written by the release before migrations
    storage.save_many(ITEMS.items())
    storage.close()
    migrations.apply(store)  # the running (newer) version started on it
    assert migrations.current_version(store) == migrations.latest()["box"] > 1
    return store


def _rollback(root: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "renkei",
            "update",
            "rollback",
            "--root",
            str(root),
            "--no-restart",
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_rollback_to_a_release_before_migrations_runs_the_down_steps(tmp_path: Path) -> None:
    root, data = tmp_path / "opt", tmp_path / "box"
    _layout(root, previous_python=None)
    store = _box_data(data)
    result = _rollback(root, data)
    assert result.returncode == 0, result.stderr
    assert os.readlink(root / "current") == "versions/0.1.0"
    assert migrations.current_version(store) == migrations.BASELINE
    storage = SqliteStorage(store)
    assert dict(storage.load_range(())) == ITEMS  # the older code reads everything
    storage.close()


def test_rollback_to_a_release_that_knows_the_schema_keeps_it(tmp_path: Path) -> None:
    root, data = tmp_path / "opt", tmp_path / "box"
    _layout(root, previous_python=sys.executable)
    store = _box_data(data)
    assert _rollback(root, data).returncode == 0
    assert migrations.current_version(store) == migrations.latest()["box"]


def test_a_failing_down_step_switches_nothing(tmp_path: Path) -> None:
    import sqlite3

    root, data = tmp_path / "opt", tmp_path / "box"
    _layout(root, previous_python=None)
    store = _box_data(data)
    with sqlite3.connect(store) as connection:  # a down step that cannot run
        connection.execute(
            "UPDATE schema_migrations SET down_sql = 'DROP TABLE no_such_table;' WHERE version = 2"
        )
    result = _rollback(root, data)
    assert result.returncode == 1 and "no_such_table" in result.stderr
    assert os.readlink(root / "current") == "versions/0.2.0"  # still the newer version
    assert migrations.current_version(store) == 2


def test_a_failed_health_check_returns_the_data_before_switching_back(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: object
) -> None:
    from firmware import updates
    from firmware.schema import downgrade

    root, data, out = tmp_path / "opt", tmp_path / "box", tmp_path / "bundles"

    def healthy(version_dir: Path) -> bool:
        probe = "import sys, renkei_dummy; sys.exit(0 if renkei_dummy.HEALTHY else 1)"
        return subprocess.run([str(version_dir / "bin" / "python"), "-c", probe]).returncode == 0

    key = release_key.verify_key  # type: ignore[attr-defined]
    first = updates.build_bundle([dummy_wheels["1.0.0"]], "1.0.0", release_key, out)  # type: ignore[arg-type]
    updates.install(first, root, key, healthy)
    store = _box_data(data)  # the next version will have migrated it (here: this code)
    failing = updates.build_bundle([dummy_wheels["2.0.0"]], "2.0.0", release_key, out)  # type: ignore[arg-type]
    seen: list[str] = []

    def back(old: Path) -> None:
        seen.append(old.name)
        downgrade([data], old)

    try:
        updates.install(failing, root, key, healthy, before_switch_back=back)
    except updates.HealthCheckFailed:
        pass
    else:
        raise AssertionError("2.0.0 is built to fail its health check")
    assert seen == ["1.0.0"] and updates.installed_version(root) == "1.0.0"
    assert migrations.current_version(store) == migrations.BASELINE
