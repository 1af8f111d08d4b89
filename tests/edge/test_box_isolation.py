"""Isolation on a box (BRIEF §3): while a town is open, its keys are in that town's
worker process and nowhere in the web front's memory; killing the worker seals the town
(its sessions end) while the box keeps serving."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from federation import enrol_box_dir
from servers import free_port
from test_box_processes import PASSWORD, _log_in, _wait

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.export_csv import read_town
from shared.storage import SqliteStorage


def _memory_contains(pid: int, needles: list[bytes]) -> bool:
    """Search every readable mapping of a live process for any of `needles`."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not match or "r" not in match.group(3):
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            if end - start > 1 << 30:
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if any(needle in chunk for needle in needles):
                return True
    return False


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.fixture(scope="module")
def box(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes], list[bytes], str]]:
    root = tmp_path_factory.mktemp("isolation")
    storage = SqliteStorage(root / "hub" / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    clerk = next(c for c in read_town(small_export_dir / "15307").clerks if c.on_roster)
    custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    storage.close()
    enrol_box_dir(root / "hub", root / "box", "15307")
    keys = [crypto.town_keys_to_secret(k)[-64:] for k in custody.ring("15307")]
    secrets = [part for k in keys for part in (k[:32], k[32:])]  # X25519 and Ed25519 seeds
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port, box_port = free_port(), free_port()
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "renkei",
            "hub",
            "--data",
            str(root / "hub"),
            "--port",
            str(hub_port),
        ]
    )
    front = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
         "--town", "15307", "--port", str(box_port), "--data", str(root / "box"),
         "--tls", str(root / "tls")]
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, root / "ca.crt")
        _wait(f"https://127.0.0.1:{box_port}", front, root / "ca.crt")
        yield f"https://127.0.0.1:{box_port}", root, front, secrets, clerk.login_id
    finally:
        for process in (front, hub):
            process.terminate()
            process.wait(timeout=15)


def _client(url: str, root: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=root / "ca.crt")
    return httpx.Client(base_url=url, verify=context, timeout=60)


def test_keys_live_in_the_town_worker_never_in_the_web_front(
    box: tuple[str, Path, subprocess.Popen[bytes], list[bytes], str],
) -> None:
    url, root, front, secrets, login = box
    with _client(url, root) as client:
        assert _log_in(client, "15307", login, PASSWORD).status_code == 303
        assert client.get("/api/search", params={"q": "スズキ"}).status_code == 200
        assert client.get("/api/health").json()["open"] == ["15307"]
    workers = _children(front.pid)
    assert len(workers) == 1
    # Positive control: the scan finds the keys where they are.
    assert _memory_contains(workers[0], secrets)
    assert not _memory_contains(front.pid, secrets)


def test_killing_the_worker_seals_the_town_and_the_box_keeps_serving(
    box: tuple[str, Path, subprocess.Popen[bytes], list[bytes], str],
) -> None:
    url, root, front, _, login = box
    with _client(url, root) as client:
        assert _log_in(client, "15307", login, PASSWORD).status_code == 303
        assert client.get("/api/search", params={"q": "スズキ"}).status_code == 200
        for pid in _children(front.pid):
            subprocess.run(["kill", f"-{signal.SIGKILL.value}", str(pid)], check=True)
        deadline = time.monotonic() + 30
        while client.get("/api/health").json()["open"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/api/health").json()["open"] == []
        assert client.get("/api/search", params={"q": "スズキ"}).status_code == 401
        # Logging in again opens the town again in a fresh worker.
        time.sleep(1.5)  # login backoff is per account; the earlier test's login succeeded
        assert _log_in(client, "15307", login, PASSWORD).status_code == 303
        assert client.get("/api/search", params={"q": "スズキ"}).status_code == 200
