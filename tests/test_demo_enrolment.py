"""`renkei demo`'s enrolment (renkei/demo_enrolment.py) with real processes on the small
towns: the demo ceremony certifies the hub's enrolment key, the box enrols with a
one-time token through `renkei enroll`'s code, and the smoke test's anchoring check
passes — the hub holds the box's newest audit chain head and no log says anchors were
refused. A second run keeps the enrolled box. Revoking the box at the hub turns the same
check red: its next heads are refused, and both logs say so."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from servers import free_port

from cloud.app import hub_db_path
from cloud.custody import Custody
from cloud.enrolment import Registry, load_issuer_key, revoke_box
from cloud.importer import import_export
from renkei.commands.demo import REFUSED_ANCHORS, _check_anchoring, _issue_tls, _wait_ready
from renkei.demo_enrolment import DemoBox, enrol_boxes, hold_ceremony, is_enrolled
from shared import crypto
from shared.export_csv import read_town
from shared.model import Role
from shared.storage import SqliteStorage

HUB_PASSPHRASE = "hub passphrase for the demo enrolment test"
CEREMONY_PASSPHRASE = "ceremony passphrase for the demo enrolment test"
PASSWORD = "correct horse battery staple 連携"
TOWN = "15307"


def _log_in(url: str, ca: Path, login_id: str) -> None:
    context = ssl.create_default_context(cafile=ca)
    with httpx.Client(base_url=url, verify=context, timeout=60) as client:
        client.get("/login").raise_for_status()
        form = {"csrf_token": client.cookies.get("renkei_login_csrf"), "town": TOWN,
                "login_id": login_id, "password": PASSWORD}  # fmt: skip
        assert client.post("/login", data=form).status_code == 303


def _refusals(logs: list[Path]) -> list[str]:
    return [
        line
        for log in logs
        for line in log.read_text(errors="replace").splitlines()
        if any(marker in line for marker in REFUSED_ANCHORS)
    ]


def test_demo_box_is_enrolled_and_anchored(tmp_path: Path, small_export_dir: Path) -> None:
    hub_data = tmp_path / "hub"
    storage = SqliteStorage(hub_db_path(hub_data))
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    clerk = next(c for c in read_town(small_export_dir / TOWN).clerks if Role.SUPERVISOR in c.roles)
    custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    storage.close()
    custody.save(hub_data, HUB_PASSPHRASE)
    root = hold_ceremony(tmp_path, hub_data, HUB_PASSPHRASE, CEREMONY_PASSPHRASE)
    assert hold_ceremony(tmp_path, hub_data, HUB_PASSPHRASE, CEREMONY_PASSPHRASE) == root
    hub_port, box_port = free_port(), free_port()
    box_url = f"https://127.0.0.1:{box_port}"
    ca_file, staged = _issue_tls(tmp_path, {TOWN: box_url}, into=tmp_path / "ceremony")
    box = DemoBox(TOWN, tmp_path / "box" / "data", tmp_path / "box" / "tls", staged[TOWN])
    hub_url = f"http://127.0.0.1:{hub_port}"
    logs = [tmp_path / "hub.log", tmp_path / "box.log"]
    renkei = [sys.executable, "-m", "renkei"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        with logs[0].open("wb") as out:
            started.append(subprocess.Popen(
                [*renkei, "hub", "--data", str(hub_data), "--port", str(hub_port)],
                env={**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE},
                stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        _wait_ready(hub_url, started[0], ca_file)
        assert not is_enrolled(hub_data, hub_url, box)
        assert enrol_boxes(hub_url, hub_data, HUB_PASSPHRASE, root, ca_file, [box]) == [box.name]
        assert is_enrolled(hub_data, hub_url, box)  # a second demo run keeps the box
        assert enrol_boxes(hub_url, hub_data, HUB_PASSPHRASE, root, ca_file, [box]) == []
        with logs[1].open("wb") as out:
            started.append(subprocess.Popen(
                [*renkei, "box", "--hub", hub_url, "--town", TOWN, "--port", str(box_port),
                 "--data", str(box.data), "--tls", str(box.tls)],
                stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        _wait_ready(box_url, started[1], ca_file)
        _log_in(box_url, ca_file, clerk.login_id)
        assert _check_anchoring(hub_data, [box], logs, timeout_s=90)
        assert _refusals(logs) == []

        # Broken on purpose: the hub revokes the box; its next heads are refused.
        registry, storage = Registry(hub_db_path(hub_data)), SqliteStorage(hub_db_path(hub_data))
        try:
            issuer = load_issuer_key(hub_data, HUB_PASSPHRASE)
            revoke_box(registry, storage, issuer, box.name, "test")
        finally:
            storage.close()
            registry.close()
        assert not is_enrolled(hub_data, hub_url, box)
        _log_in(box_url, ca_file, clerk.login_id)
        assert not _check_anchoring(hub_data, [box], logs, timeout_s=20)
        refused = _refusals(logs)
        assert any("revoked" in line for line in refused), refused
        assert _refusals([logs[1]]), "the box says the hub refused its anchors"
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)
