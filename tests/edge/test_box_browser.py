"""A clerk's terminal on the town hall LAN: the hub and the box run in one network
namespace, Debian's Chromium in another, and the browser logs in to the real box over
HTTPS at the box's LAN address (not loopback, where `Secure` cookies are waived), with
the federation CA trusted the way a town's terminal trusts it, then searches — with
JavaScript on and off. Screenshots land in var/screenshots/."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from federation import enrol_box_dir
from netns import CHROMIUM, namespace_pair, nss_home

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.export_csv import read_town
from shared.storage import SqliteStorage

BOX_ADDR, TERMINAL_ADDR = "10.233.0.1", "10.233.0.2"
PASSWORD = "correct horse battery staple 連携"
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    with namespace_pair("rkbox", BOX_ADDR, TERMINAL_ADDR) as pair:
        yield pair


def test_clerk_browser_logs_in_and_searches_over_https_on_the_lan(
    lan: tuple[str, str], tmp_path: Path, small_export_dir: Path
) -> None:
    assert Path(CHROMIUM).exists(), "install Debian package 'chromium' (scripts/setup.sh)"
    box_ns, terminal_ns = lan
    hub_data = tmp_path / "hub"
    hub_data.mkdir()
    storage = SqliteStorage(hub_data / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    town = read_town(small_export_dir / "15307")
    clerk = next(c for c in town.clerks if c.on_roster)
    custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    storage.close()
    enrol_box_dir(hub_data, tmp_path / "box", "15307")
    ca_cert, ca_key = create_ca()
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca_cert)
    write_server_files(
        tmp_path / "tls", *issue_server_cert(ca_cert, ca_key, ["box-15307.renkei.lan"], [BOX_ADDR])
    )
    person = next(r for r in town.residents if r.removal is None)
    renkei = [sys.executable, "-m", "renkei"]
    in_box_ns = ["ip", "netns", "exec", box_ns]
    hub = subprocess.Popen(
        [*in_box_ns, *renkei, "hub", "--data", str(hub_data), "--port", "8700"]
    )
    box = subprocess.Popen(
        [*in_box_ns, *renkei, "box", "--hub", "http://127.0.0.1:8700", "--town", "15307",
         "--host", BOX_ADDR, "--port", "443", "--data", str(tmp_path / "box"),
         "--tls", str(tmp_path / "tls")]
    )  # fmt: skip
    try:
        out = tmp_path / "browser.json"
        browser = subprocess.run(
            ["ip", "netns", "exec", terminal_ns, "env", f"HOME={nss_home(tmp_path, ca_file)}",
             sys.executable, str(Path(__file__).with_name("browser_session.py")),
             f"https://{BOX_ADDR}", "15307", clerk.login_id, PASSWORD, person.kana,
             str(out), str(SHOTS)],
            capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert browser.returncode == 0, browser.stdout + browser.stderr
        result = json.loads(out.read_text(encoding="utf-8"))
    finally:
        for process in (box, hub):
            process.terminate()
            process.wait(timeout=15)
    for mode in ("js", "no_js"):
        seen = result[mode]
        assert person.name in seen["names"], (mode, seen["names"])
        assert seen["url"].startswith(f"https://{BOX_ADDR}/?q=")
        session = {c["name"]: c for c in seen["cookies"]}["renkei_session"]
        assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    for shot in ("js-login.png", "js-search.png", "nojs-search.png"):
        assert (SHOTS / shot).stat().st_size > 1000
