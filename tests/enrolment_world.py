"""A hub data folder ready to enrol boxes (shared by the enrolment tests): a town's public
key and some blobs in the hub's sync log, a federation root (in the test's hands, as in
a ceremony), the hub's enrolment key certified by it, and the ceremony's TLS material."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nacl.signing import SigningKey

from cloud.enrolment import Registry, create_issuer_key, verify_issuer_for
from cloud.store import towns_entry
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared.crypto import FederationRoot, TownKeys, issue_issuer_certificate
from shared.storage import SqliteStorage
from shared.sync.identity import Identity
from shared.sync.log import BlobLog
from shared.sync.replica import seal_documents

TOWN = "15307"
PASSPHRASE = "hub operator passphrase 連携"


@dataclass
class World:
    hub: Path
    root: FederationRoot
    town: TownKeys
    tls: Path  # server.crt, server.key, federation-ca.crt for the box
    ca: Path


def add_blobs(hub: Path, town: TownKeys, count: int, tag: str) -> None:
    storage = SqliteStorage(hub / "hub.db")
    try:
        writer = Identity(SigningKey(bytes(32 - len(tag)) + tag.encode()))
        data = {f"registry-{tag}-{i:02d}": f"{tag} {i}".encode() for i in range(count)}
        seal_documents(BlobLog(storage), writer, town.public, data)
    finally:
        storage.close()


def certify_issuer(hub: Path, root: FederationRoot, days: int) -> None:
    """The ceremony certifies the hub's enrolment key (again: a renewal)."""
    registry = Registry(hub / "hub.db")
    key = bytes.fromhex(registry.setting("issuer_key") or "")
    now = datetime.now(UTC)
    from nacl.signing import VerifyKey

    verify_key = VerifyKey(key)
    cert = issue_issuer_certificate(
        root,
        verify_key,
        verify_key.to_curve25519_public_key(),
        issued_at=now - timedelta(minutes=1),
        expires_at=now + timedelta(days=days),
    )
    registry.set_setting("issuer", json.dumps(verify_issuer_for(registry, cert).to_json()))
    registry.close()


def make_world(
    base: Path, *, certify: bool = True, issuer_days: int = 400, tls_days: int = 397
) -> World:
    hub = base / "hub"
    hub.mkdir(parents=True)
    town = TownKeys.generate(TOWN)
    storage = SqliteStorage(hub / "hub.db")
    storage.save_many(
        [towns_entry(storage, TOWN), ((TOWN, "public"), json.dumps(town.public.to_json()).encode())]
    )
    storage.close()
    add_blobs(hub, town, 3, "a")
    root = FederationRoot.generate()
    registry = Registry(hub / "hub.db")
    registry.set_setting("root", bytes(root.verify_key).hex())
    key = create_issuer_key(hub, PASSPHRASE)
    registry.set_setting("issuer_key", bytes(key.verify_key).hex())
    registry.close()
    if certify:
        certify_issuer(hub, root, issuer_days)
    ca_cert, ca_key = create_ca()
    tls = base / "ceremony-tls"
    write_server_files(tls, *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"], tls_days))
    (base / "ceremony-ca.key").write_bytes(ca_key)
    (tls / "federation-ca.crt").write_bytes(ca_cert)
    return World(hub, root, town, tls, tls / "federation-ca.crt")
