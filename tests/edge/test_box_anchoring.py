"""Audit chain heads anchored at the hub, with real processes: the box, enrolled with
`renkei enroll` (its certificate chaining to the federation root), sends its signed heads,
the hub keeps them, and `renkei audit verify` then names a box log rolled back to an older
copy or cut short after anchoring — while the intact log passes. Heads signed by a key
that is not an enrolled box's are refused."""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from enrolment_world import certify_issuer
from nacl.signing import SigningKey
from servers import free_port
from test_box_processes import PASSWORD, _log_in, _wait

from cloud.custody import Custody
from cloud.enrolment import Registry, create_issuer_key
from cloud.importer import import_export
from edge.anchoring import signed_statement
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.audit import AnchorStore, ChainHead, entry_key
from shared.crypto import FederationRoot
from shared.export_csv import read_town
from shared.model import Role
from shared.storage import SqliteStorage

HUB_PASSPHRASE = "hub passphrase for the anchoring test"
WRITER = "box:box-15307"


@dataclass
class Site:
    url: str
    hub_url: str
    root: Path
    supervisor: str
    box: subprocess.Popen[bytes]

    @property
    def box_db(self) -> Path:
        return self.root / "box" / "data" / "replica.db"


def prepare_hub(root: Path, export_dir: Path) -> tuple[FederationRoot, str]:
    """A hub data folder with the small export imported, a supervisor of 15307 who can
    log in, and box enrolment configured (a federation root, the hub's certified
    enrolment key sealed under HUB_PASSPHRASE). Returns the root and the supervisor."""
    storage = SqliteStorage(root / "hub" / "hub.db")
    custody = Custody.create()
    assert import_export(export_dir, storage, custody=custody).ok
    supervisor = next(
        c for c in read_town(export_dir / "15307").clerks if Role.SUPERVISOR in c.roles
    )
    custody.provision_clerk(storage, supervisor, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    storage.close()
    custody.save(root / "hub", HUB_PASSPHRASE)
    federation = FederationRoot.generate()
    registry = Registry(root / "hub" / "hub.db")
    registry.set_setting("root", bytes(federation.verify_key).hex())
    issuer = create_issuer_key(root / "hub", HUB_PASSPHRASE)
    registry.set_setting("issuer_key", bytes(issuer.verify_key).hex())
    registry.close()
    certify_issuer(root / "hub", federation, 30)
    return federation, supervisor.login_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("anchoring")
    federation, supervisor = prepare_hub(root, small_export_dir)
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port, box_port = free_port(), free_port()
    env = {**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE}
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"),
         "--port", str(hub_port)], env=env,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, root / "ca.crt")
        enrol_box(root, f"http://127.0.0.1:{hub_port}", federation, env, "box-15307",
               root / "box" / "data", root / "tls")  # fmt: skip
    except BaseException:
        hub.terminate()
        hub.wait(timeout=15)
        raise
    box = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
         "--town", "15307", "--port", str(box_port), "--data", str(root / "box" / "data"),
         "--tls", str(root / "tls")]
    )  # fmt: skip
    try:
        _wait(f"https://127.0.0.1:{box_port}", box, root / "ca.crt")
        yield Site(
            f"https://127.0.0.1:{box_port}", f"http://127.0.0.1:{hub_port}", root,
            supervisor, box,
        )  # fmt: skip
    finally:
        for process in (box, hub):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=15)


def enrol_box(
    root: Path, hub_url: str, federation: FederationRoot, env: dict[str, str], box: str,
    data: Path, tls: Path,
) -> None:  # fmt: skip
    """`renkei enrolment token` at the hub, then `renkei enroll` on the box."""

    def renkei(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "renkei", *args], capture_output=True, text=True,
            env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    token = renkei(
        "enrolment", "token", "--data", str(root / "hub"), "--box", box,
        "--town", "15307",
    ).strip()  # fmt: skip
    renkei(
        "enroll", "--hub", hub_url, "--token", token, "--data", str(data),
        "--tls", str(tls), "--root", bytes(federation.verify_key).hex(),
    )  # fmt: skip


def _activity(site: Site, logins: int) -> None:
    context = ssl.create_default_context(cafile=site.root / "ca.crt")
    with httpx.Client(base_url=site.url, verify=context, timeout=60) as client:
        for _ in range(logins):
            assert _log_in(client, "15307", site.supervisor, PASSWORD).status_code == 303


def _box_head(site: Site) -> ChainHead:
    storage = SqliteStorage(site.box_db)
    try:
        raw = storage.load(("15307", "audit-head", WRITER))
    finally:
        storage.close()
    assert raw is not None
    return ChainHead.from_json(json.loads(raw))


def _hub_anchor(site: Site) -> ChainHead | None:
    storage = SqliteStorage(site.root / "hub" / "hub.db")
    try:
        return AnchorStore(storage, "15307").get(WRITER)
    finally:
        storage.close()


def _wait_anchored(site: Site) -> ChainHead:
    head = _box_head(site)
    deadline = time.monotonic() + 60
    while _hub_anchor(site) != head and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _hub_anchor(site) == head
    return head


def _verify(site: Site, store: Path | None) -> subprocess.CompletedProcess[str]:
    where = [] if store is None else ["--store", str(store), "--box", "box-15307"]
    return subprocess.run(
        [sys.executable, "-m", "renkei", "audit", "verify", "--data", str(site.root / "hub"),
         "--town", "15307", *where],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE},
    )  # fmt: skip


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_a_rolled_back_or_cut_box_log_is_named_after_anchoring(site: Site) -> None:
    _activity(site, 2)
    early = _wait_anchored(site)
    _copy(site.box_db, site.root / "old-copy.db")  # what someone could restore later
    _activity(site, 2)
    late = _wait_anchored(site)
    assert late.seq > early.seq

    intact = _verify(site, site.box_db)
    assert intact.returncode == 0, intact.stderr
    # The hub's own store holds no box entries: its verify passes and points to --store.
    at_hub = _verify(site, None)
    assert at_hub.returncode == 0, at_hub.stderr
    assert WRITER in at_hub.stdout and "--store" in at_hub.stdout

    rolled_back = _verify(site, site.root / "old-copy.db")
    assert rolled_back.returncode == 1
    assert f"書き手 {WRITER} の第{early.seq + 1}件: 末尾の切り取り" in rolled_back.stderr

    # Stop the box, then cut its two newest entries and rewrite the head to match, as
    # someone with the disk would.
    site.box.terminate()
    site.box.wait(timeout=30)
    head = _box_head(site)
    storage = SqliteStorage(site.box_db)
    try:
        storage.remove(entry_key("15307", WRITER, head.seq))
        storage.remove(entry_key("15307", WRITER, head.seq - 1))
        before = ChainHead(WRITER, head.seq - 2, bytes(32))
        storage.save(("15307", "audit-head", WRITER), json.dumps(before.to_json()).encode())
    finally:
        storage.close()
    cut = _verify(site, site.box_db)
    assert cut.returncode == 1
    assert f"書き手 {WRITER} の第{head.seq - 1}件: 末尾の切り取り" in cut.stderr


def test_the_hub_refuses_heads_signed_by_another_key_for_the_box(site: Site) -> None:
    """Neither another key in the enrolled box's name nor an unenrolled box is taken."""
    intruder = SigningKey.generate()
    forged = signed_statement(
        "box-15307", intruder, {"15307": [ChainHead(WRITER, 999, bytes(32)).to_json()]}, 0.0
    )
    response = httpx.post(f"{site.hub_url}/api/audit/anchors", json=forged, timeout=30)
    assert response.status_code == 403
    assert "does not name" in response.json()["error"]
    stranger = signed_statement(
        "box-other", intruder, {"15307": [ChainHead("box:box-other", 1, bytes(32)).to_json()]},
        0.0,
    )  # fmt: skip
    refused = httpx.post(f"{site.hub_url}/api/audit/anchors", json=stranger, timeout=30)
    assert refused.status_code == 403 and "not enrolled" in refused.json()["error"]
    anchor = _hub_anchor(site)
    assert anchor is not None and anchor.seq != 999
