"""A hub and one box as real processes on loopback (the box over HTTPS), for the counter
tests: the box's counter.json is written before it starts, and a clerk session logs in
through the form the way a browser does."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from federation import enrol_box_dir
from servers import free_port

from cloud.custody import Custody
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.export_csv import read_town
from shared.model import Role
from shared.storage import SqliteStorage

PASSWORD = "correct horse battery staple 連携"


@dataclass
class CounterBox:
    url: str
    ca_file: Path
    data: Path
    box: subprocess.Popen[bytes]
    hub: subprocess.Popen[bytes]
    hub_port: int
    clerk: str  # a clerk on the roster (no supervisor role needed)
    supervisor: str
    visitor: str = ""  # 出雲崎町 (15405) roster clerk, with partner=True
    deputy: crypto.ClerkKeys | None = None  # a 15405 deputy who signs activations

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=self.ca_file)
        return httpx.Client(base_url=self.url, verify=context, timeout=120)

    def log_in(
        self, client: httpx.Client, login_id: str | None = None, town: str = "15307"
    ) -> None:
        for _ in range(5):
            client.get("/login").raise_for_status()
            token = client.cookies.get("renkei_login_csrf")
            form = {"csrf_token": token, "town": town, "login_id": login_id or self.clerk,
                    "password": PASSWORD}  # fmt: skip
            response = client.post("/login", data=form)
            if response.status_code == 303:
                return
            time.sleep(2)
        raise AssertionError(response.text[-500:])


def csrf(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"')[0]


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


def start_hub(hub_data: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(hub_data), "--port", str(port)]
    )


@contextmanager
def counter_box(
    root: Path,
    export_dir: Path,
    counter_json: dict[str, Any] | None = None,
    *,
    partner: bool = False,
    drill: bool = False,
) -> Iterator[CounterBox]:
    hub_data = root / "hub"
    hub_data.mkdir()
    storage = SqliteStorage(hub_data / "hub.db")
    custody = Custody.create()
    assert import_export(export_dir, storage, custody=custody).ok
    clerks = read_town(export_dir / "15307").clerks
    clerk = next(c for c in clerks if c.on_roster and Role.SUPERVISOR not in c.roles)
    supervisor = next(c for c in clerks if Role.SUPERVISOR in c.roles)
    for person in (clerk, supervisor):
        custody.provision_clerk(storage, person, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    visitor, deputy_keys = "", None
    if partner:  # a visiting 出雲崎町 clerk, and a deputy of theirs to sign an activation
        partners = read_town(export_dir / "15405").clerks
        roster = next(c for c in partners if c.on_roster and c.deputy_rank == 0)
        deputy = next(c for c in partners if c.deputy_rank > 0 and Role.REPRESENTATIVE in c.roles)
        for person in (roster, deputy):
            custody.provision_clerk(storage, person, PASSWORD, kdf_limits=crypto.INTERACTIVE)
        record = json.loads(storage.load(("15405", "credential", deputy.login_id)) or b"{}")
        deputy_keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
        visitor = roster.login_id
    storage.close()
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    data = root / "data"
    data.mkdir()
    enrol_box_dir(hub_data, data, "15307")
    if counter_json is not None:
        (data / "counter.json").write_text(json.dumps(counter_json, ensure_ascii=False))
    hub_port, box_port = free_port(), free_port()
    hub = start_hub(hub_data, hub_port)
    log = (root / "box.log").open("wb")
    box = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
         "--town", "15307", "--port", str(box_port), "--data", str(data),
         "--tls", str(root / "tls"), *(["--drill"] if drill else [])],
        env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    fed = CounterBox(
        f"https://127.0.0.1:{box_port}", root / "ca.crt", data, box, hub, hub_port,
        clerk.login_id, supervisor.login_id, visitor, deputy_keys,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, root / "ca.crt")
        _wait(fed.url, box, root / "ca.crt")
        yield fed
    finally:
        for process in (fed.box, fed.hub):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        log.close()


def audit_entries(fed: CounterBox, login_id: str, town: str = "15307") -> tuple[Any, list[Any]]:
    """Open the town's audit chains in the box's store with a clerk's keys: the
    verification report (box chain and clerk-session chains) and every entry, decrypted."""
    from edge.boxkey import box_signing_key
    from edge.replica import BoxReplica
    from shared.audit import AUDIT, AuditEntry, box_writer_id, verify_town
    from shared.blobs import open_blob

    storage = SqliteStorage(fed.data / "replica.db")
    try:
        unlocked = BoxReplica(storage).unlock(town, login_id, PASSWORD)
        box_writer = box_writer_id("box-15307")
        writers = {box_writer: box_signing_key(fed.data).verify_key}
        stored = {key[2] for key, _ in storage.load_range((town, AUDIT))}
        for writer in stored:  # clerk sessions of this clerk (e.g. `renkei reprint`)
            if writer.startswith(f"clerk:{login_id}:"):
                writers[writer] = unlocked.clerk_keys.signing_key.verify_key
        report = verify_town(storage, unlocked.keyring, writers, {}, writers=list(writers))
        entries = []
        for key, blob in storage.load_range((town, AUDIT)):
            if key[2] not in writers:
                continue
            _header, plaintext = open_blob(blob, unlocked.keyring, writers.get)
            entries.append(AuditEntry.from_plaintext(plaintext))
    finally:
        storage.close()
    return report, entries
