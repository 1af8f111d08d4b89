"""A hub and a box as real processes on loopback, the box over HTTPS: a clerk logs in
with their usual ID and password, searches; a partner town does not open without an
activation; and after the box stops, nothing personal can be read in anything it wrote
(data folder, SQLite WAL and journals, temporary files, logs)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from plaintext_scan import scan
from servers import free_port

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.export_csv import read_town
from shared.model import TownExport
from shared.storage import SqliteStorage

PASSWORD = "correct horse battery staple 連携"


@dataclass
class Federation:
    box_url: str
    ca_file: Path
    tree: Path  # everything the box process wrote lives under here
    box: subprocess.Popen[bytes]
    clerk: str
    partner_clerk: str


def _wait(url: str, process: subprocess.Popen[bytes], ca: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url} exited"
        try:
            context = ssl.create_default_context(cafile=ca)
            if httpx.get(f"{url}/api/health", timeout=2, verify=context).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("federation")
    hub_data = root / "hub"
    hub_data.mkdir()
    storage = SqliteStorage(hub_data / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    clerks = {}
    for code in ("15307", "15405"):
        clerk = next(c for c in read_town(small_export_dir / code).clerks if c.on_roster)
        custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
        clerks[code] = clerk.login_id
    storage.close()
    tree = root / "box"
    (tree / "tmp").mkdir(parents=True)
    ca_cert, ca_key = create_ca()
    (tree / "ca.crt").write_bytes(ca_cert)
    write_server_files(tree / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port, box_port = free_port(), free_port()
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(hub_data), "--port", str(hub_port)]
    )
    env = dict(os.environ, TMPDIR=str(tree / "tmp"))
    log = (tree / "box.log").open("wb")
    box = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
         "--town", "15307", "--port", str(box_port), "--data", str(tree / "data"),
         "--tls", str(tree / "tls")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, tree / "ca.crt")
        _wait(f"https://127.0.0.1:{box_port}", box, tree / "ca.crt")
        yield Federation(
            f"https://127.0.0.1:{box_port}", tree / "ca.crt", tree, box,
            clerks["15307"], clerks["15405"],
        )
    finally:
        for process in (box, hub):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        log.close()


def _client(fed: Federation) -> httpx.Client:
    context = ssl.create_default_context(cafile=fed.ca_file)
    return httpx.Client(base_url=fed.box_url, verify=context, timeout=60)


def _log_in(client: httpx.Client, town: str, login_id: str, password: str) -> httpx.Response:
    client.get("/login").raise_for_status()
    token = client.cookies.get("renkei_login_csrf")
    form = {"csrf_token": token, "town": town, "login_id": login_id, "password": password}
    return client.post("/login", data=form)


def test_search_needs_a_login(federation: Federation) -> None:
    with _client(federation) as client:
        assert client.get("/api/search", params={"q": "ア"}).status_code == 401
        assert client.get("/").status_code == 303


def test_clerk_logs_in_and_finds_a_resident(
    federation: Federation, small_export_dir: Path
) -> None:
    person = next(r for r in read_town(small_export_dir / "15307").residents if not r.removal)
    with _client(federation) as client:
        response = _log_in(client, "15307", federation.clerk, PASSWORD)
        assert response.status_code == 303, response.text[-600:]
        cookie = response.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        api = client.get("/api/search", params={"q": person.kana}).json()
        assert person.id in [row["resident_id"] for row in api["results"]]
        page = client.get("/", params={"q": person.kana})
        assert person.name in page.text and "データの時点" in page.text
        refused = client.get("/api/search", params={"q": person.my_number})
        assert refused.status_code == 400  # 個人番号 is never a search key
        assert "個人番号" in refused.json()["error"]


def test_wrong_password_is_refused(federation: Federation) -> None:
    with _client(federation) as client:
        response = _log_in(client, "15307", federation.clerk, PASSWORD + "!")
        assert response.status_code == 401
        assert "パスワードが違います" in response.text


def test_partner_town_does_not_open_without_activation(federation: Federation) -> None:
    with _client(federation) as client:
        response = _log_in(client, "15405", federation.partner_clerk, PASSWORD)
        assert response.status_code == 403
        assert "アクティベーション" in response.text
        health = client.get("/api/health").json()
        assert "15405" not in health["open"]


def test_nothing_personal_at_rest_after_the_box_stops(
    federation: Federation, small_exports: list[TownExport]
) -> None:
    """Runs last in this module: stops the box, then scans everything it wrote."""
    time.sleep(2.5)  # the backoff after the wrong-password test above
    with _client(federation) as client:
        assert _log_in(client, "15307", federation.clerk, PASSWORD).status_code == 303
        assert client.get("/api/search", params={"q": "スズキ"}).status_code == 200
    federation.box.terminate()
    federation.box.wait(timeout=10)
    written = sorted(p.name for p in (federation.tree / "data").iterdir())
    assert "replica.db" in written
    residents = [r for e in small_exports for r in e.residents]
    assert scan(federation.tree, residents) == []
