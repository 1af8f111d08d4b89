"""Audit heads anchored at a LAN peer, with real processes: two boxes of 聖籠町 enrolled
with `renkei enroll`, discovering each other on loopback (`renkei box --discover`); the
hub is then stopped, a supervisor logs in on box A, and A's new heads reach box B only.
Cutting those entries from A's log passes `renkei audit verify` with the hub's anchors
alone and fails, naming the first missing entry, with B's replica.db as `--anchors`."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from box_lan import TOWN, lan_boxes
from test_box_anchoring import HUB_PASSPHRASE
from test_box_processes import PASSWORD, _log_in

from shared.audit import AnchorStore, ChainHead, entry_key
from shared.storage import SqliteStorage

BOXES = {"a": "box-15307", "b": "seiro-2"}


def _anchor(db: Path, writer: str) -> ChainHead | None:
    storage = SqliteStorage(db)
    try:
        return AnchorStore(storage, TOWN).get(writer)
    finally:
        storage.close()


def _head(db: Path, writer: str) -> ChainHead:
    storage = SqliteStorage(db)
    try:
        raw = storage.load((TOWN, "audit-head", writer))
    finally:
        storage.close()
    assert raw is not None
    return ChainHead.from_json(json.loads(raw))


def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _verify(root: Path, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "renkei", "audit", "verify", "--data", str(root / "hub"),
         "--town", TOWN, "--store", str(store), "--box", BOXES["a"], *extra],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE},
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_peer_boxs_anchors_name_a_cut_tail_written_while_the_hub_was_away(
    tmp_path: Path, small_export_dir: Path
) -> None:
    root = tmp_path
    writer = f"box:{BOXES['a']}"
    with lan_boxes(root, small_export_dir, BOXES) as lan:
        db_a, db_b = lan.data["a"] / "replica.db", lan.data["b"] / "replica.db"
        context = ssl.create_default_context(cafile=lan.ca)

        def log_in_on_a(times: int) -> None:
            with httpx.Client(base_url=lan.url("a"), verify=context, timeout=60) as client:
                for _ in range(times):
                    assert _log_in(client, TOWN, lan.supervisor, PASSWORD).status_code == 303

        log_in_on_a(1)
        head = _head(db_a, writer)
        _until(lambda: _anchor(root / "hub" / "hub.db", writer) == head, 90, "anchored at hub")
        lan.hub.send_signal(signal.SIGTERM)
        lan.hub.wait(timeout=30)
        at_hub = _anchor(root / "hub" / "hub.db", writer)
        assert at_hub is not None

        log_in_on_a(2)  # with the hub away
        newest = _head(db_a, writer)
        assert newest.seq > at_hub.seq
        _until(lambda: _anchor(db_b, writer) == newest, 120, "A's newest head anchored at B")

    intact = _verify(root, db_a, "--anchors", str(db_b))
    assert intact.returncode == 0, intact.stderr
    # Cut every entry A wrote while the hub was away; rewrite its head to match.
    storage = SqliteStorage(db_a)
    try:
        for seq in range(at_hub.seq + 1, newest.seq + 1):
            storage.remove(entry_key(TOWN, writer, seq))
        storage.save((TOWN, "audit-head", writer), json.dumps(at_hub.to_json()).encode())
    finally:
        storage.close()
    alone = _verify(root, db_a)
    assert alone.returncode == 0, alone.stderr  # the hub never saw those entries
    cut = _verify(root, db_a, "--anchors", str(db_b))
    assert cut.returncode == 1, cut.stdout
    assert f"書き手 {writer} の第{at_hub.seq + 1}件: 末尾の切り取り" in cut.stderr
