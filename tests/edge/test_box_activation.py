"""覚書 §2 on a real host box: a visiting clerk's correct password does not open their
town until a deputy of that town signs an activation naming this box and the clerk and a
host supervisor enters it; then it does — and while it is open, still nothing personal is
readable in anything the box wrote; after a revocation it no longer opens."""

from __future__ import annotations

import json
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
from nacl.signing import SigningKey
from plaintext_scan import scan
from servers import free_port
from test_box_processes import PASSWORD, _log_in, _wait

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.activation import issue_activation, issue_revocation
from shared.audit import box_writer_id, verify_town
from shared.export_csv import read_town
from shared.model import Role, TownExport
from shared.storage import SqliteStorage


@dataclass
class Host:
    url: str
    root: Path
    supervisor: str
    visitor: str
    other_clerk: str
    deputy: crypto.ClerkKeys
    custody: Custody


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("activation")
    storage = SqliteStorage(root / "hub" / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    seiro = read_town(small_export_dir / "15307").clerks
    izumozaki = read_town(small_export_dir / "15405").clerks
    supervisor = next(c for c in seiro if Role.SUPERVISOR in c.roles)
    roster = [c for c in izumozaki if c.on_roster and c.deputy_rank == 0]
    deputy = next(c for c in izumozaki if c.deputy_rank > 0 and Role.REPRESENTATIVE in c.roles)
    for clerk in (supervisor, *roster[:2], deputy):
        custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    record = json.loads(storage.load(("15405", "credential", deputy.login_id)) or b"{}")
    deputy_keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
    storage.close()
    enrol_box_dir(root / "hub", root / "box" / "data", "15307")
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port, box_port = free_port(), free_port()
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"),
         "--port", str(hub_port)]
    )  # fmt: skip
    box = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
         "--town", "15307", "--port", str(box_port), "--data", str(root / "box" / "data"),
         "--tls", str(root / "tls")]
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, root / "ca.crt")
        _wait(f"https://127.0.0.1:{box_port}", box, root / "ca.crt")
        yield Host(
            f"https://127.0.0.1:{box_port}", root, supervisor.login_id,
            roster[0].login_id, roster[1].login_id, deputy_keys, custody,
        )  # fmt: skip
    finally:
        for process in (box, hub):
            process.terminate()
            process.wait(timeout=15)


def _client(host: Host) -> httpx.Client:
    context = ssl.create_default_context(cafile=host.root / "ca.crt")
    return httpx.Client(base_url=host.url, verify=context, timeout=60)


def _supervisor_enters(host: Host, code: str, action: str = "accept") -> httpx.Response:
    with _client(host) as client:
        assert _log_in(client, "15307", host.supervisor, PASSWORD).status_code == 303
        page = client.get("/activation")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        return client.post(
            "/activation", data={"csrf_token": token, "code": code, "action": action}
        )


def test_activation_opens_the_partner_town_for_the_named_clerk_only(
    host: Host, small_exports: list[TownExport]
) -> None:
    with _client(host) as visitor:
        refused = _log_in(visitor, "15405", host.visitor, PASSWORD)
        assert refused.status_code == 403 and "アクティベーション" in refused.text
    now = time.time()
    activation = issue_activation(
        host.deputy, host_town="15307", host_box="box-15307", clerks=[host.visitor],
        not_before=now - 120, expires_at=now + 3600,
    )  # fmt: skip
    accepted = _supervisor_enters(host, activation.to_code())
    assert accepted.status_code == 200 and "受け付けました" in accepted.text
    with _client(host) as visitor:
        assert _log_in(visitor, "15405", host.visitor, PASSWORD).status_code == 303
        izumozaki = next(e for e in small_exports if e.town.code == "15405")
        person = next(r for r in izumozaki.residents if r.removal is None)
        found = visitor.get("/api/search", params={"q": person.kana}).json()
        assert person.id in [row["resident_id"] for row in found["results"]]
        assert found["town"] == "15405"
        # While the partner town is open, nothing personal is readable at rest.
        residents = [r for e in small_exports for r in e.residents]
        assert scan(host.root / "box", residents) == []
    with _client(host) as other:  # a roster clerk the activation does not name
        assert _log_in(other, "15405", host.other_clerk, PASSWORD).status_code == 403
    revocation = issue_revocation(host.deputy, target=activation.id, at=time.time())
    revoked = _supervisor_enters(host, revocation.to_code(), action="revoke")
    assert revoked.status_code == 200 and "取消" in revoked.text
    time.sleep(1.5)  # the per-account login backoff does not apply, but be gentle
    with _client(host) as visitor:
        assert _log_in(visitor, "15405", host.visitor, PASSWORD).status_code == 403
        assert visitor.get("/api/health").json()["open"] == ["15307"]


def test_a_code_for_another_box_is_refused(host: Host) -> None:
    now = time.time()
    activation = issue_activation(
        host.deputy, host_town="15307", host_box="box-elsewhere", clerks=[host.visitor],
        not_before=now - 120, expires_at=now + 3600,
    )  # fmt: skip
    response = _supervisor_enters(host, activation.to_code())
    assert response.status_code == 400


def test_logins_and_activations_are_in_the_towns_verified_audit_chains(host: Host) -> None:
    """Runs after the activation test: the box wrote its audit entries sealed to each
    town; with the towns' keys they verify and say what happened."""
    box_key = SigningKey((host.root / "box" / "data" / "box.key").read_bytes())
    writers = {box_writer_id("box-15307"): box_key.verify_key}
    storage = SqliteStorage(host.root / "box" / "data" / "replica.db")
    try:
        seiro = verify_town(storage, host.custody.ring("15307"), writers, {})
        izumozaki = verify_town(storage, host.custody.ring("15405"), writers, {})
    finally:
        storage.close()
    assert seiro.ok and izumozaki.ok, (seiro.summary(), izumozaki.summary())
    assert seiro.kinds.get("login_ok", 0) >= 1
    assert izumozaki.kinds.get("login_failed", 0) >= 1  # refused before the activation
    assert izumozaki.kinds.get("login_ok", 0) >= 1
    assert izumozaki.kinds.get("activation_accepted", 0) >= 1


def _worker_pid(host: Host, town: str) -> int:
    # Scoped to this box's data folder: other test runs on the machine have workers too.
    pattern = f"edge.worker --data {host.root / 'box' / 'data'} --town {town} "
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert len(out) >= 1, f"no worker for {town}"
    return int(out[0])


def test_killing_one_towns_worker_leaves_the_other_town_working(host: Host) -> None:
    now = time.time()
    activation = issue_activation(
        host.deputy, host_town="15307", host_box="box-15307", clerks=[host.visitor],
        not_before=now - 120, expires_at=now + 7200,  # not the revoked one's twin
    )  # fmt: skip
    assert _supervisor_enters(host, activation.to_code()).status_code == 200
    time.sleep(1.5)  # the visitor's refused login above left a short backoff
    with _client(host) as own, _client(host) as visiting:
        assert _log_in(own, "15307", host.supervisor, PASSWORD).status_code == 303
        assert _log_in(visiting, "15405", host.visitor, PASSWORD).status_code == 303
        assert own.get("/api/health").json()["open"] == ["15307", "15405"]
        subprocess.run(["kill", "-9", str(_worker_pid(host, "15307"))], check=True)
        deadline = time.monotonic() + 30
        while "15307" in own.get("/api/health").json()["open"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert own.get("/api/search", params={"q": "スズキ"}).status_code == 401
        assert visiting.get("/api/search", params={"q": "スズキ"}).status_code == 200


def test_a_typed_revocation_seals_only_when_no_other_activation_holds_the_town(
    host: Host,
) -> None:
    """Runs after the test above, whose activation for `visitor` is still valid: revoking
    another activation of the same town, typed by the supervisor, ends the sessions of
    the clerk it named at once but leaves the town open for the visitor."""
    now = time.time()
    second = issue_activation(
        host.deputy, host_town="15307", host_box="box-15307", clerks=[host.other_clerk],
        not_before=now - 120, expires_at=now + 3600,
    )  # fmt: skip
    assert _supervisor_enters(host, second.to_code()).status_code == 200
    time.sleep(1.5)
    with _client(host) as visiting, _client(host) as other:
        assert _log_in(visiting, "15405", host.visitor, PASSWORD).status_code == 303
        assert _log_in(other, "15405", host.other_clerk, PASSWORD).status_code == 303
        assert other.get("/api/search", params={"q": "スズキ"}).status_code == 200
        revocation = issue_revocation(host.deputy, target=second.id, at=time.time())
        revoked = _supervisor_enters(host, revocation.to_code(), action="revoke")
        assert other.get("/api/search", params={"q": "スズキ"}).status_code == 401
        assert visiting.get("/api/search", params={"q": "スズキ"}).status_code == 200
        assert "15405" in visiting.get("/api/health").json()["open"]
        assert revoked.status_code == 200 and "開いたまま" in revoked.text
