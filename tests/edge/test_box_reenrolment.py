"""A box re-enrolled with a NEW key (its disk replaced, `renkei enroll` run again with a
fresh token), with real processes: the hub keeps the first key's period and certifies
the second, so the new box's chain verifies and is anchored, the old box's entries made
before the re-enrolment still verify, and the old key is refused from then on — for
anchors at the hub, on the federation's revocation list, and for an entry it signs
after the re-enrolment (docs/audit.md §1 "Box keys")."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from nacl.signing import SigningKey
from servers import free_port
from test_box_anchoring import HUB_PASSPHRASE, enrol_box, prepare_hub
from test_box_processes import PASSWORD, _log_in, _wait

from edge.anchoring import signed_statement
from edge.revocations import verify_list
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared.audit import AnchorStore, AuditKind, AuditLog, AuditWriter, ChainHead
from shared.crypto import TownPublic
from shared.storage import SqliteStorage

TOWN = "15307"
BOX = "box-15307"


def _renkei_env() -> dict[str, str]:
    return {**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE}


@contextmanager
def _running_box(root: Path, hub_url: str, data: Path) -> Iterator[str]:
    port = free_port()
    box = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", hub_url, "--town", TOWN,
         "--port", str(port), "--data", str(data), "--tls", str(root / "tls")]
    )  # fmt: skip
    try:
        _wait(f"https://127.0.0.1:{port}", box, root / "ca.crt")
        yield f"https://127.0.0.1:{port}"
    finally:
        box.terminate()
        box.wait(timeout=30)


def _log_in_twice(root: Path, url: str, login: str) -> None:
    context = ssl.create_default_context(cafile=root / "ca.crt")
    with httpx.Client(base_url=url, verify=context, timeout=60) as client:
        for _ in range(2):
            assert _log_in(client, TOWN, login, PASSWORD).status_code == 303


def _box_chain(data: Path) -> ChainHead:
    """The head of the one box chain this store writes."""
    storage = SqliteStorage(data / "replica.db")
    try:
        heads = [
            ChainHead.from_json(json.loads(raw))
            for key, raw in storage.load_range((TOWN, "audit-head"))
            if key[2].startswith("box:")
        ]
    finally:
        storage.close()
    assert len(heads) == 1, heads
    return heads[0]


def _hub_anchor(root: Path, writer: str) -> ChainHead | None:
    storage = SqliteStorage(root / "hub" / "hub.db")
    try:
        return AnchorStore(storage, TOWN).get(writer)
    finally:
        storage.close()


def _anchored(root: Path, head: ChainHead, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _hub_anchor(root, head.writer) == head:
            return True
        time.sleep(0.5)
    return False


def _verify(root: Path, store: Path, *box: str) -> subprocess.CompletedProcess[str]:
    boxes = [arg for name in box for arg in ("--box", name)]
    return subprocess.run(
        [sys.executable, "-m", "renkei", "audit", "verify", "--data", str(root / "hub"),
         "--town", TOWN, "--store", str(store), *boxes],
        capture_output=True, text=True, timeout=300, env=_renkei_env(),
    )  # fmt: skip


def test_a_box_re_enrolled_with_a_new_key(tmp_path: Path, small_export_dir: Path) -> None:
    root = tmp_path
    federation, supervisor = prepare_hub(root, small_export_dir)
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"),
         "--port", str(hub_port)], env=_renkei_env(),
    )  # fmt: skip
    old_data, new_data = root / "old" / "data", root / "new" / "data"
    try:
        _wait(hub_url, hub, root / "ca.crt")
        enrol_box(root, hub_url, federation, _renkei_env(), BOX, old_data, root / "tls")
        with _running_box(root, hub_url, old_data) as url:
            _log_in_twice(root, url, supervisor)
            old_head = _box_chain(old_data)
            assert _anchored(root, old_head)
        old_key = SigningKey((old_data / "box.key").read_bytes())

        # The box's disk is replaced: a fresh data folder, a fresh key, a fresh token.
        enrol_box(root, hub_url, federation, _renkei_env(), BOX, new_data, root / "tls")
        new_key = SigningKey((new_data / "box.key").read_bytes())
        assert bytes(new_key.verify_key) != bytes(old_key.verify_key)
        with _running_box(root, hub_url, new_data) as url:
            _log_in_twice(root, url, supervisor)
            new_head = _box_chain(new_data)
            anchored = _anchored(root, new_head)

        # The new box's chain verifies with the key certified for it, and the box named
        # checks its current chain (no false cut tail against the first key's anchor).
        new = _verify(root, new_data / "replica.db", BOX)
        assert new.returncode == 0, new.stderr
        assert anchored, "the new box's head was not anchored at the hub"
        # The first key's anchor was not moved by the new chain, and its entries (the old
        # disk, kept or recovered) still verify: they were made in its period.
        assert _hub_anchor(root, old_head.writer) == old_head
        old = _verify(root, old_data / "replica.db", old_head.writer)
        assert old.returncode == 0, old.stderr

        # The old key after the re-enrolment: the hub refuses its heads ...
        late = ChainHead(old_head.writer, old_head.seq + 1, bytes(32))
        stated = signed_statement(BOX, old_key, {TOWN: [late.to_json()]}, time.time())
        refused = httpx.post(f"{hub_url}/api/audit/anchors", json=stated, timeout=30)
        assert refused.status_code == 403, refused.text
        assert _hub_anchor(root, old_head.writer) == old_head
        # ... the federation's revocation list names it (so LAN peers refuse it too) ...
        listed = verify_list(
            httpx.get(f"{hub_url}/api/revocations", timeout=30).json(),
            federation.verify_key,
            now=datetime.now(UTC),
        )
        assert listed.reason(old_key.verify_key)
        assert listed.reason(new_key.verify_key) is None
        # ... and an entry it signs now, on the old disk, is named by audit verify.
        hub_storage = SqliteStorage(root / "hub" / "hub.db")
        raw_public = hub_storage.load((TOWN, "public"))
        hub_storage.close()
        assert raw_public is not None
        public = TownPublic.from_json(json.loads(raw_public))
        storage = SqliteStorage(old_data / "replica.db")
        try:
            AuditLog(storage, public).append(
                AuditWriter(old_head.writer, old_key), AuditKind.LOGIN_OK, {}, time.time()
            )
        finally:
            storage.close()
        forged = _verify(root, old_data / "replica.db", old_head.writer)
        assert forged.returncode == 1
        assert f"書き手 {old_head.writer} の第{old_head.seq + 1}件" in forged.stderr
        assert "有効期間外の鍵" in forged.stderr
    finally:
        if hub.poll() is None:
            hub.terminate()
            hub.wait(timeout=15)
