"""A hub and a 聖籠町 box as real processes, with one provisioned clerk per role of 聖籠町
and, of 出雲崎町, two roster clerks and a deputy (to sign activations): what the
supervisor-screen and crawl tests log in as."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from federation import enrol_box_dir
from servers import free_port
from test_box_processes import PASSWORD, _log_in, _wait

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.activation import issue_activation
from shared.export_csv import read_town
from shared.model import Clerk, Role
from shared.storage import SqliteStorage

HOST, PARTNER = "15307", "15405"


@dataclass
class RoleBox:
    url: str
    hub_url: str
    root: Path
    logins: dict[str, str]  # role name → login id (聖籠町)
    visitors: list[str]  # 出雲崎町 roster clerks
    deputy: crypto.ClerkKeys  # 出雲崎町 deputy (representative, deputy_rank > 0)
    deputy_login: str
    custody: Custody
    extra: dict[str, object] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=self.root / "ca.crt")
        return httpx.Client(base_url=self.url, verify=context, timeout=120)

    @contextmanager
    def logged_in(self, town: str, login_id: str) -> Iterator[httpx.Client]:
        with self.client() as client:
            response = _log_in(client, town, login_id, PASSWORD)
            assert response.status_code == 303, response.text[-800:]
            yield client

    def activate(self, visitor: str, supervisor: str, hours: float = 2) -> bytes:
        """The deputy signs an activation for `visitor`; the host supervisor enters it."""
        now = time.time()
        activation = issue_activation(
            self.deputy,
            host_town=HOST,
            host_box=f"box-{HOST}",
            clerks=[visitor],
            not_before=now - 120,
            expires_at=now + hours * 3600,
        )
        with self.logged_in(HOST, supervisor) as client:
            response = client.post(
                "/activation",
                data={
                    "csrf_token": csrf(client.get("/activation").text),
                    "code": activation.to_code(),
                    "action": "accept",
                },
            )
            assert response.status_code == 200, response.text[-800:]
        return activation.id


def csrf(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]


def _pick(clerks: list[Clerk], want: set[Role], avoid: frozenset[Role] = frozenset()) -> Clerk:
    return next(c for c in clerks if want <= set(c.roles) and not (avoid & set(c.roles)))


@contextmanager
def role_box(root: Path, export_dir: Path) -> Iterator[RoleBox]:
    storage = SqliteStorage(root / "hub" / "hub.db")
    custody = Custody.create()
    assert import_export(export_dir, storage, custody=custody).ok
    seiro = read_town(export_dir / HOST).clerks
    izumozaki = read_town(export_dir / PARTNER).clerks
    picked = {
        "clerk": _pick(seiro, {Role.CLERK}, frozenset({Role.SUPERVISOR})),
        "supervisor": _pick(seiro, {Role.SUPERVISOR, Role.CLERK}),
        "representative": _pick(seiro, {Role.REPRESENTATIVE}, frozenset({Role.SUPERVISOR})),
        "soumu": _pick(seiro, {Role.REPRESENTATIVE, Role.SUPERVISOR}),
        "admin": _pick(seiro, {Role.ADMIN}),
    }
    roster = [c for c in izumozaki if c.on_roster and c.deputy_rank == 0]
    # the 総務課長: a deputy on the roster, so they can also come and end the emergency
    deputy = next(c for c in izumozaki if c.deputy_rank > 0 and c.on_roster)
    for clerk in (*picked.values(), *roster[:2], deputy):
        custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    record = json.loads(storage.load((PARTNER, "credential", deputy.login_id)) or b"{}")
    deputy_keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
    storage.close()
    enrol_box_dir(root / "hub", root / "box" / "data", HOST)
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port, box_port = free_port(), free_port()
    log = (root / "box.log").open("wb")
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
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    box = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "renkei",
            "box",
            "--hub",
            f"http://127.0.0.1:{hub_port}",
            "--town",
            HOST,
            "--port",
            str(box_port),
            "--data",
            str(root / "box" / "data"),
            "--tls",
            str(root / "tls"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, root / "ca.crt")
        _wait(f"https://127.0.0.1:{box_port}", box, root / "ca.crt")
        yield RoleBox(
            f"https://127.0.0.1:{box_port}",
            f"http://127.0.0.1:{hub_port}",
            root,
            {role: c.login_id for role, c in picked.items()},
            [c.login_id for c in roster[:2]],
            deputy_keys,
            deputy.login_id,
            custody,
        )
    finally:
        for process in (box, hub):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        log.close()
