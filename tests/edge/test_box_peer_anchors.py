"""Audit heads anchored at a LAN peer, with real processes: two boxes of 聖籠町 enrolled
with `renkei enroll`, discovering each other on loopback (`renkei box --discover`); the
hub is then stopped, a supervisor logs in on box A, and A's new heads reach box B only.
Cutting those entries from A's log passes `renkei audit verify` with the hub's anchors
alone and fails, naming the first missing entry, with B's replica.db as `--anchors`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from servers import free_port
from test_box_anchoring import HUB_PASSPHRASE, enrol_box, prepare_hub
from test_box_processes import PASSWORD, _log_in, _wait

from edge.tls import create_ca, issue_server_cert, write_server_files
from shared.audit import AnchorStore, ChainHead, entry_key
from shared.storage import SqliteStorage

TOWN = "15307"
BOXES = {"a": "box-15307", "b": "seiro-2"}
FAST = {"liveness_interval_s": 1.0, "liveness_timeout_s": 2.0, "recheck_s": 2.0}


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
    federation, supervisor = prepare_hub(root, small_export_dir)
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    env = {**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE}
    hub_port = free_port()
    ports = {name: free_port() for name in BOXES}
    data = {name: root / name / "data" for name in BOXES}
    processes: list[subprocess.Popen[bytes]] = []
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"),
         "--port", str(hub_port)], env=env,
    )  # fmt: skip
    processes.append(hub)
    hub_url = f"http://127.0.0.1:{hub_port}"
    try:
        _wait(hub_url, hub, root / "ca.crt")
        for name, box in BOXES.items():
            tls = root / name / "tls"
            shutil.copytree(root / "tls", tls)
            enrol_box(root, hub_url, federation, env, box, data[name], tls)
            settings_file = data[name] / "discovery.json"
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
            settings.update(FAST, port=ports[name], name=f"聖籠町 {box}")
            settings_file.write_text(json.dumps(settings, ensure_ascii=False))
        boxes = {}
        for name in BOXES:
            boxes[name] = subprocess.Popen(
                [sys.executable, "-m", "renkei", "box", "--hub", hub_url, "--town", TOWN,
                 "--port", str(ports[name]), "--data", str(data[name]),
                 "--tls", str(root / name / "tls"), "--discover", "127.0.0.1"], env=env,
            )  # fmt: skip
            processes.append(boxes[name])
        for name, process in boxes.items():
            _wait(f"https://127.0.0.1:{ports[name]}", process, root / "ca.crt")
        writer = f"box:{BOXES['a']}"
        db_a, db_b = data["a"] / "replica.db", data["b"] / "replica.db"
        context = ssl.create_default_context(cafile=root / "ca.crt")
        url_a = f"https://127.0.0.1:{ports['a']}"

        def log_in_on_a(times: int) -> None:
            with httpx.Client(base_url=url_a, verify=context, timeout=60) as client:
                for _ in range(times):
                    assert _log_in(client, TOWN, supervisor, PASSWORD).status_code == 303

        log_in_on_a(1)
        head = _head(db_a, writer)
        _until(lambda: _anchor(root / "hub" / "hub.db", writer) == head, 90, "anchored at hub")
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
        at_hub = _anchor(root / "hub" / "hub.db", writer)
        assert at_hub is not None

        log_in_on_a(2)  # with the hub away
        newest = _head(db_a, writer)
        assert newest.seq > at_hub.seq
        _until(lambda: _anchor(db_b, writer) == newest, 120, "A's newest head anchored at B")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

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
