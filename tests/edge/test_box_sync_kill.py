"""A box process killed with SIGKILL while it stores what the hub sends (before, in the
middle of, and after writing a reply's blobs) restarts cleanly: its store passes SQLite's
integrity check and the log's own check every time, and once started without the
failpoint it finishes the transfer, holds what the hub holds, and a clerk's login opens
the town from its log with every resident there."""

from __future__ import annotations

import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from federation import PASSWORD, enrol_box_dir, make_hub, roster_and_other
from servers import free_port
from test_box_processes import _log_in, _wait

from edge.tls import create_ca, issue_server_cert, write_server_files
from shared.export_csv import read_town
from shared.storage import SqliteStorage
from shared.sync.log import BlobLog

TOWN = "15307"
POINTS = ("apply.mid-store", "apply.before-store", "apply.after-store", "apply.mid-store@2")


def _sound(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    storage = SqliteStorage(path)
    try:
        log = BlobLog(storage)
        assert log.verify_all() == [] and log.conflicts == []
        return {town: log.have([town]) for town in log.towns()}
    finally:
        storage.close()


@pytest.mark.slow
def test_a_box_killed_mid_apply_restarts_cleanly(tmp_path: Path, small_export_dir: Path) -> None:
    hub_data = tmp_path / "hub"
    make_hub(hub_data, small_export_dir, clerks=[TOWN])
    box_data = tmp_path / "box"
    enrol_box_dir(hub_data, box_data, TOWN)
    ca_cert, ca_key = create_ca()
    (tmp_path / "ca.crt").write_bytes(ca_cert)
    write_server_files(tmp_path / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    arm = tmp_path / "failpoint"
    hub_port, box_port = free_port(), free_port()
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(hub_data), "--port", str(hub_port)],
        env={**os.environ, "RENKEI_HUB_PASSPHRASE": PASSWORD},
    )
    box_cmd = [
        sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
        "--town", TOWN, "--port", str(box_port), "--data", str(box_data),
        "--tls", str(tmp_path / "tls"),
    ]  # fmt: skip
    env = {**os.environ, "RENKEI_SYNC_FAILPOINT": f"file:{arm}"}
    box: subprocess.Popen[bytes] | None = None
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, tmp_path / "ca.crt")
        progress = []
        for point in POINTS:
            arm.write_text(point)
            box = subprocess.Popen(box_cmd, env=env)
            box.wait(timeout=120)  # dies at the point, during its first sync with the hub
            assert box.returncode == -signal.SIGKILL, point
            progress.append(_sound(box_data / "replica.db"))
        held = [sum(w.contiguous for h in have.values() for t in h.values() for w in t.values())
                for have in progress]  # fmt: skip
        assert held[-1] > 0  # the kills interrupted a transfer that was making progress
        arm.write_text("")
        box = subprocess.Popen(box_cmd, env=env)
        url = f"https://127.0.0.1:{box_port}"
        _wait(url, box, tmp_path / "ca.crt")
        hub_store = SqliteStorage(hub_data / "hub.db")
        box_store = SqliteStorage(box_data / "replica.db")
        try:
            hub_log, box_log = BlobLog(hub_store), BlobLog(box_store)
            towns = hub_log.towns()
            deadline = time.monotonic() + 60
            while box_log.have(towns) != hub_log.have(towns):
                assert time.monotonic() < deadline, "the box never caught up"
                time.sleep(0.5)
                box_log.refresh()
                hub_log.refresh()
        finally:
            hub_store.close()
            box_store.close()
        clerk, _ = roster_and_other(small_export_dir / TOWN)
        residents = read_town(small_export_dir / TOWN).residents
        person = next(r for r in residents if r.removal is None)
        context = ssl.create_default_context(cafile=tmp_path / "ca.crt")
        with httpx.Client(base_url=url, verify=context, timeout=60) as client:
            assert _log_in(client, TOWN, clerk.login_id, PASSWORD).status_code == 303
            found = client.get("/api/search", params={"q": person.kana}).json()
            assert person.id in [row["resident_id"] for row in found["results"]]
        _sound(box_data / "replica.db")
    finally:
        for process in (box, hub):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
