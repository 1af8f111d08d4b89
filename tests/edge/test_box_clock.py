"""The box's trusted time with real processes: a clock behind the newest signed time the
box has seen refuses logins; after a power loss a supervisor must confirm the date before
anyone works."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import free_port
from test_box_processes import PASSWORD, _log_in, _wait

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.clock import TrustedClock
from shared.export_csv import read_town
from shared.model import Role
from shared.storage import SqliteStorage


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> Iterator[tuple[str, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("clock")
    storage = SqliteStorage(root / "hub" / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    clerks = read_town(small_export_dir / "15307").clerks
    chosen = {
        "clerk": next(c for c in clerks if Role.SUPERVISOR not in c.roles),
        "supervisor": next(c for c in clerks if Role.SUPERVISOR in c.roles),
    }
    for clerk in chosen.values():
        custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    storage.close()
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"), "--port", str(port)]
    )
    try:
        _wait(f"http://127.0.0.1:{port}", process, root / "ca.crt")
        yield f"http://127.0.0.1:{port}", root, {k: c.login_id for k, c in chosen.items()}
    finally:
        process.terminate()
        process.wait(timeout=10)


def _box(hub_url: str, root: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", hub_url, "--town", "15307",
         "--port", str(port), "--data", str(data), "--tls", str(root / "tls")]
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    _wait(url, process, root / "ca.crt")
    return process, url


def _client(url: str, root: Path) -> httpx.Client:
    return httpx.Client(
        base_url=url, verify=ssl.create_default_context(cafile=root / "ca.crt"), timeout=60
    )


def test_clock_behind_the_signed_floor_refuses_logins(
    hub: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    hub_url, root, logins = hub
    data = tmp_path / "box"
    data.mkdir()
    TrustedClock(data / "clock.json").observe_signed_time(time.time() + 86_400)
    process, url = _box(hub_url, root, data)
    try:
        with _client(url, root) as client:
            response = _log_in(client, "15307", logins["clerk"], PASSWORD)
            assert response.status_code == 503
            assert "日付" in response.text or "時刻" in response.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_after_a_power_loss_a_supervisor_confirms_the_date_first(
    hub: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    hub_url, root, logins = hub
    data = tmp_path / "box"
    data.mkdir()
    # The state was last saved in another boot: the box lost power since.
    TrustedClock(data / "clock.json", boot_id_reader=lambda: "an-earlier-boot").observe_signed_time(
        time.time() - 3600
    )
    process, url = _box(hub_url, root, data)
    try:
        with _client(url, root) as clerk:
            assert _log_in(clerk, "15307", logins["clerk"], PASSWORD).status_code == 303
            page = clerk.get("/", params={"q": "スズキ"})
            assert "日付の確認が必要です" in page.text and "監督者に日付の確認を依頼" in page.text
        with _client(url, root) as supervisor:
            assert _log_in(supervisor, "15307", logins["supervisor"], PASSWORD).status_code == 303
            page = supervisor.get("/")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            confirmed = supervisor.post("/clock/confirm", data={"csrf_token": token})
            assert confirmed.status_code == 303
            assert "日付の確認が必要です" not in supervisor.get("/").text
    finally:
        process.terminate()
        process.wait(timeout=10)
