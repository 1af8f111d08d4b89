"""A revoked box is refused by its partner boxes, with real processes: three boxes of
聖籠町 enrolled with `renkei enroll` discover and verify each other on loopback
(`renkei box --discover`). Box B is pointed at a hub address where nothing listens, so it
can learn of a revocation only from its LAN peers. `renkei enrolment revoke` at the hub
revokes box A; box C fetches the signed list from the hub, B takes it from C, and both
then refuse A at their next liveness check (REFUSED in their LAN journals) and no longer
admit A's sync id at their sync ports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from box_lan import FAST as LIVENESS
from box_lan import lan_boxes

from cloud.sync_api import peer_key
from edge.discovery import JOURNAL_FILE
from edge.revocations import FILE
from shared.storage import SqliteStorage
from shared.sync.replica import load_or_create_identity

BOXES = {"a": "box-15307", "b": "seiro-2", "c": "seiro-3"}
# each box also asks its sources for a newer revocation list every second
FAST = {**LIVENESS, "revocation_interval_s": 1.0}


def _journal(data: Path) -> list[dict[str, Any]]:
    path = data / JOURNAL_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _verified(data: Path, box: str) -> bool:
    return any(e.get("event") == "verified" and e.get("box") == box for e in _journal(data))


def _refused_as_revoked(data: Path) -> list[dict[str, Any]]:
    return [
        e
        for e in _journal(data)
        if e.get("event") == "refused" and "revocation list" in str(e.get("reason"))
    ]


def _sequence(data: Path) -> int:
    path = data / FILE
    return json.loads(path.read_text())["list"]["sequence"] if path.exists() else 0


def _sync_id(data: Path) -> str:
    storage = SqliteStorage(data / "replica.db")
    try:
        return load_or_create_identity(storage).writer_id
    finally:
        storage.close()


def _admits(data: Path, sync_id: str) -> bool:
    storage = SqliteStorage(data / "replica.db")
    try:
        return storage.load(peer_key(sync_id)) is not None
    finally:
        storage.close()


def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_revoked_box_is_refused_by_partner_boxes_even_one_that_cannot_reach_the_hub(
    tmp_path: Path, small_export_dir: Path
) -> None:
    with lan_boxes(
        tmp_path, small_export_dir, BOXES, settings=FAST, sync_ports=True,
        hub_unreachable=frozenset({"b"}),
    ) as lan:  # fmt: skip
        data = lan.data
        for name in ("b", "c"):
            _until(lambda n=name: _verified(data[n], BOXES["a"]), 120, f"{name} verifies A")
        assert not _refused_as_revoked(data["b"]) and not _refused_as_revoked(data["c"])
        sync_a = _sync_id(data["a"])
        for name in ("b", "c"):
            _until(lambda n=name: _admits(data[n], sync_a), 60, f"{name} admits A's sync id")

        done = subprocess.run(
            [sys.executable, "-m", "renkei", "enrolment", "revoke", "--data",
             str(lan.root / "hub"), "--box", BOXES["a"]],
            capture_output=True, text=True, env=lan.env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

        _until(lambda: _sequence(data["c"]) == 1, 120, "C fetches the list from the hub")
        _until(lambda: _sequence(data["b"]) == 1, 120, "B takes the list from C")
        for name in ("b", "c"):
            _until(lambda n=name: _refused_as_revoked(data[n]), 60, f"{name} refuses A")
        refused = _refused_as_revoked(data["b"])[0]
        assert BOXES["a"] in refused["reason"]
        # and A's sync id is no longer admitted at B's and C's sync ports
        for name in ("b", "c"):
            _until(lambda n=name: not _admits(data[n], sync_a), 30, f"{name} withdraws A")
            assert _admits(data[name], _sync_id(data["c" if name == "b" else "b"]))
