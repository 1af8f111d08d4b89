"""Audit chain heads anchored at LAN peers (edge/peer_anchors.py), with no hub running:
two enrolled boxes on loopback find and verify each other (real python-zeroconf, real
HTTPS identity proofs), exchange their signed heads and keep each other's; box A's log is
then cut short, and `renkei audit verify --anchors <box B's replica.db>` names the first
missing entry — while without B's anchors the cut log looks whole. What a peer refuses
(another root, another key, its own name, an altered statement) is checked in-process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from discovery_nodes import box_key, start_node, until
from nacl.signing import SigningKey

from cloud.anchors import AnchorRefused
from cloud.custody import Custody
from edge.anchoring import chain_heads, signed_statement
from edge.peer_anchors import PeerAnchorExchange, accept_peer_statement, peer_anchor_routes
from shared.audit import AnchorStore, AuditKind, AuditLog, AuditWriter, ChainHead, entry_key
from shared.crypto import FederationRoot, TownPublic, issue_box_certificate
from shared.storage import MemoryStorage, SqliteStorage

TOWN = "15307"
PASSPHRASE = "hub passphrase for the peer anchoring test"


def _log(storage: SqliteStorage | MemoryStorage, public: TownPublic, box: str, key: SigningKey,
         entries: int) -> None:  # fmt: skip
    log, writer = AuditLog(storage, public), AuditWriter.for_box(box, key)
    for i in range(entries):
        log.append(writer, AuditKind.LOGIN_OK, {"n": i}, time.time())


def _verify(hub: Path, store: Path, box: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "renkei", "audit", "verify", "--data", str(hub), "--town", TOWN,
         "--store", str(store), "--box", box, *extra],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RENKEI_HUB_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_heads_anchored_at_a_peer_name_a_cut_tail_with_the_hub_away(tmp_path: Path) -> None:
    root = FederationRoot.generate()
    custody = Custody.create()
    public = custody.ring(TOWN).public
    hub = tmp_path / "hub"
    hub.mkdir()
    SqliteStorage(hub / "hub.db").close()
    custody.save(hub, PASSPHRASE)
    stores = {name: tmp_path / name / "replica.db" for name in ("a", "b")}
    boxes = {name: f"{name}-{TOWN}" for name in stores}
    for name, path in stores.items():
        path.parent.mkdir(parents=True)
        storage = SqliteStorage(path)
        _log(storage, public, boxes[name], box_key(path.parent), 5 if name == "a" else 2)
        storage.close()

    async def scenario() -> None:
        opened = {name: SqliteStorage(path) for name, path in stores.items()}
        nodes, exchanges = [], []
        try:
            for name in ("a", "b"):
                node = await start_node(
                    tmp_path, name, TOWN, pin=root.verify_key, root=root,
                    routes=lambda box_id, n=name: peer_anchor_routes(  # type: ignore[misc]
                        opened[n], box_id, lambda: root.verify_key
                    ),
                )  # fmt: skip
                nodes.append(node)
            for node, name in zip(nodes, ("a", "b"), strict=True):
                exchange = PeerAnchorExchange(
                    opened[name], lambda: [TOWN], node.box_id, box_key(node.data),
                    lambda n=node: n.lan.identity.certificate,  # type: ignore[misc]
                    lambda n=node: n.lan.monitor.verified() if n.lan.monitor else [],  # type: ignore[misc]
                    interval_s=0.2,
                )  # fmt: skip
                await exchange.start()
                exchanges.append(exchange)
            a_writer, b_writer = f"box:{boxes['a']}", f"box:{boxes['b']}"

            def anchored(store: str, writer: str) -> ChainHead | None:
                return AnchorStore(opened[store], TOWN).get(writer)

            await until(lambda: anchored("b", a_writer) is not None, 60, "A's heads at B")
            await until(lambda: anchored("a", b_writer) is not None, 60, "B's heads at A")
            assert anchored("b", a_writer) == AuditLog(opened["a"], public).head(a_writer)
            assert anchored("a", b_writer) == AuditLog(opened["b"], public).head(b_writer)
            # a newer head travels too
            _log(opened["a"], public, boxes["a"], box_key(nodes[0].data), 1)
            await until(lambda: (anchored("b", a_writer) or ChainHead(a_writer, 0, bytes(32))).seq
                        == 6, 60, "A's newer head at B")  # fmt: skip
        finally:
            for exchange in exchanges:
                await exchange.stop()
            for node in nodes:
                await node.stop()
            for storage in opened.values():
                storage.close()

    asyncio.run(scenario())

    writers = tmp_path / "writers.json"
    keys = {f"box:{boxes[n]}": bytes(box_key(stores[n].parent).verify_key).hex() for n in stores}
    writers.write_text(json.dumps(keys))
    box_a = boxes["a"]
    intact = _verify(hub, stores["a"], box_a, "--writers", str(writers), "--anchors",
                     str(stores["b"]))  # fmt: skip
    assert intact.returncode == 0, intact.stderr

    # Cut A's two newest entries and rewrite its head to match, as someone with the disk.
    writer = f"box:{box_a}"
    storage = SqliteStorage(stores["a"])
    try:
        storage.remove(entry_key(TOWN, writer, 6))
        storage.remove(entry_key(TOWN, writer, 5))
        storage.save((TOWN, "audit-head", writer), json.dumps(
            ChainHead(writer, 4, bytes(32)).to_json()).encode())  # fmt: skip
    finally:
        storage.close()
    alone = _verify(hub, stores["a"], box_a, "--writers", str(writers))
    assert alone.returncode == 0, alone.stderr  # on its own the cut chain looks whole
    cut = _verify(hub, stores["a"], box_a, "--writers", str(writers), "--anchors",
                  str(stores["b"]))  # fmt: skip
    assert cut.returncode == 1, cut.stdout
    assert f"書き手 {writer} の第5件: 末尾の切り取り" in cut.stderr


def _cert_for(root: FederationRoot, box: str, key: SigningKey):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    return issue_box_certificate(
        root, box, town=TOWN, sealing_key=key.verify_key.to_curve25519_public_key(),
        verify_key=key.verify_key, issued_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=1),
    )  # fmt: skip


def test_a_peer_takes_heads_only_with_a_certificate_of_the_pinned_root() -> None:
    root, other_root = FederationRoot.generate(), FederationRoot.generate()
    custody = Custody.create()
    public = custody.ring(TOWN).public
    key = SigningKey.generate()
    source = MemoryStorage()
    _log(source, public, "a-15307", key, 3)
    heads = chain_heads(source, [TOWN])

    def body(signer: SigningKey, cert_root: FederationRoot, box: str = "a-15307") -> dict:  # type: ignore[type-arg]
        statement = signed_statement(box, signer, heads, time.time())
        statement["certificate"] = _cert_for(cert_root, box, key).to_json()
        return statement

    peer = MemoryStorage()
    now = time.time()

    def accept(payload: object, own: str = "b-15307") -> dict:  # type: ignore[type-arg]
        return accept_peer_statement(peer, payload, root=root.verify_key, own_box=own, now=now)

    for payload, status, own in [
        (body(key, other_root), 403, "b-15307"),  # enrolled under another federation
        (body(SigningKey.generate(), root), 403, "b-15307"),  # not the certified key
        (body(key, root), 403, "a-15307"),  # its own name
        ({"statement": {}}, 400, "b-15307"),
    ]:
        with pytest.raises(AnchorRefused) as refused:
            accept(payload, own)
        assert refused.value.status == status
    altered = body(key, root)
    altered["statement"]["heads"] = {TOWN: [ChainHead("box:a-15307", 99, bytes(32)).to_json()]}
    with pytest.raises(AnchorRefused, match="signature"):
        accept(altered)
    expired = body(key, root)
    with pytest.raises(AnchorRefused, match="certificate"):
        accept_peer_statement(peer, expired, root=root.verify_key, own_box="b", now=now + 2 * 86400)
    assert peer.load_range((TOWN, "audit-anchor")) == []

    assert accept(body(key, root)) == {"stored": 1, "conflicts": []}
    assert AnchorStore(peer, TOWN).get("box:a-15307") == ChainHead.from_json(heads[TOWN][0])
