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
from federation import enrol_box_dir
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
    enrol_box_dir(hub_data, tree / "data", "15307")
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
    """Log in through the form; waits out the throttle's short backoff (left by an
    earlier test's deliberate failure) instead of depending on the order tests run in."""
    for _ in range(5):
        client.get("/login").raise_for_status()
        token = client.cookies.get("renkei_login_csrf")
        form = {"csrf_token": token, "town": town, "login_id": login_id, "password": password}
        response = client.post("/login", data=form)
        if "秒待ってから" not in response.text:
            return response
        time.sleep(2)
    return response


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


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def test_counter_issues_a_juminhyo_and_explains_a_refusal(
    federation: Federation, small_export_dir: Path, tmp_path: Path
) -> None:
    """Search → household → request → the issuance rules → a PDF (or the refusal, with
    what to tell the applicant) — without JavaScript: plain forms."""
    town = read_town(small_export_dir / "15307")
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    person = next(r for r in town.residents if r.removal is None and r.id not in blocked)
    time.sleep(1.5)
    with _client(federation) as client:
        assert _log_in(client, "15307", federation.clerk, PASSWORD).status_code == 303
        page = client.get(f"/resident/{person.id}")
        assert page.status_code == 200 and person.name in page.text
        form = {
            "csrf_token": _csrf(page.text), "subject": person.id, "requester": "本人",
            "applicant_name": person.name, "applicant_id": person.id,
            "identity": "顔写真付き書類1点", "documents": "運転免許証",
        }  # fmt: skip
        issued = client.post("/issue", data=form)
        assert issued.status_code == 200, issued.text[-600:]
        assert issued.headers["content-type"] == "application/pdf"
        pdf = tmp_path / "juminhyo.pdf"
        pdf.write_bytes(issued.content)
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "住民票" in text and "発行番号" in text
        # The issued document is kept sealed: `renkei reprint` reproduces it byte for byte.
        number = issued.headers["content-disposition"].split("juminhyo-")[1].split(".pdf")[0]
        again = tmp_path / "reprint.pdf"
        reprint = subprocess.run(
            [sys.executable, "-m", "renkei", "reprint", number, "--data",
             str(federation.tree / "data"), "--town", "15307", "--login", federation.clerk,
             "--out", str(again)],
            env={**os.environ, "RENKEI_PASSWORD": PASSWORD}, capture_output=True, text=True,
        )  # fmt: skip
        assert reprint.returncode == 0, reprint.stderr
        assert again.read_bytes() == issued.content
        # The QR on the printed page verifies on the box's public page — and fails altered.
        subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", str(pdf),
                        str(tmp_path / "page")], check=True)  # fmt: skip
        page_png = next(tmp_path.glob("page*.png"))
        payload = subprocess.run(
            ["zbarimg", "--quiet", "--raw", str(page_png)], capture_output=True, text=True
        ).stdout.strip()
        assert payload.startswith("RK1:")
        with _client(federation) as anyone:  # no login needed
            good = anyone.post("/verify", data={"payload": payload})
            assert "署名は有効です" in good.text
            flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
            bad = anyone.post("/verify", data={"payload": flipped})
            assert "署名は有効です" not in bad.text and "確認できません" in bad.text
        victim = next(r for r in town.residents if r.id in blocked and r.removal is None)
        third = {**form, "subject": victim.id, "requester": "第三者",
                 "applicant_name": "第三者　太郎", "applicant_id": ""}  # fmt: skip
        refused = client.post("/issue", data=third)
        assert refused.status_code in (200, 400)
        assert "交付できません" in refused.text
        assert victim.name not in refused.text  # a refusal never shows the protected person


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
    # Every file the box wrote is on this list: stores of sealed blobs, wrapped keys and
    # public keys (replica.db), the login throttle (login ids, no passwords), the trusted
    # clock's floor, the box's own signing key (opens nothing), the workers' sockets, the
    # run mode (normal or drill) the web process tells its workers.
    allowed = {"replica.db", "replica.db-wal", "replica.db-shm", "logins.db", "logins.db-wal",
               "logins.db-shm", "clock.json", "box.key", "run", "box-mode.json"}  # fmt: skip
    written = {p.name for p in (federation.tree / "data").iterdir()}
    assert "replica.db" in written and written <= allowed, written - allowed
    assert all(p.is_socket() for p in (federation.tree / "data" / "run").iterdir())
    # The worker's checkpoint of the town (Loro snapshots of every document) is among
    # what the scan reads: sealed like the log.
    replica = SqliteStorage(federation.tree / "data" / "replica.db")
    assert replica.load(("sync", "checkpoint", "15307")) is not None
    residents = [r for e in small_exports for r in e.residents]
    assert scan(federation.tree, residents) == []
