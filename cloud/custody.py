"""The hub as key custodian (BRIEF §3): every town's key ring and the hub's writer key.

At rest the keys exist only in `DATA/custody.sealed`, encrypted under the operator's
passphrase (argon2id + XChaCha20-Poly1305, `shared.crypto.seal_secret`); the operator
unseals them when the hub starts. Nothing else in the data folder holds a private key.

The hub's writer key signs every blob the hub writes into the sync log (the importer's
deltas, the compaction snapshots: `cloud.replica`) and its notices; the towns' documents
reach the boxes only that way, sealed to each town's public key — a box stores and relays
them and can open none of them by itself. The custodian also publishes each clerk's
credential record: the clerk's keys wrapped under their password, the town's keys sealed
to the clerk, and the clerk's town-signed certificate. Partner boxes receive only the
records of clerks on the town's emergency roster.

Storage keys (next to the hub's store, see `cloud.store`):

    (town, "credential", login)   a clerk's credential record (JSON)
    (town, "public")              the town's current public keys (JSON)
    (town, "partner-without-my-number")   the town's option: partners get a copy of its
                                  documents without 個人番号 (`cloud.partner`)
    ("federation", "hub-writer")  the hub's writer verify key (hex)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nacl.signing import SigningKey

from shared import crypto
from shared.clerk_records import new_credential
from shared.model import Clerk
from shared.storage import Storage, StorageKey

HUB_WRITER_KEY: StorageKey = ("federation", "hub-writer")
CUSTODY_FILE = "custody.sealed"


class CustodyError(Exception):
    """The custody file is missing, damaged, or the passphrase is wrong."""


@dataclass(slots=True)
class Custody:
    rings: dict[str, crypto.KeyRing]
    writer: SigningKey

    @classmethod
    def create(cls) -> Custody:
        return cls({}, SigningKey.generate())

    def ring(self, town: str) -> crypto.KeyRing:
        """The town's key ring, created at epoch 1 the first time the hub sees the town."""
        if town not in self.rings:
            self.rings[town] = crypto.KeyRing(town, [crypto.TownKeys.generate(town)])
        return self.rings[town]

    # ------------------------------------------------------------------ at rest

    def _to_bytes(self) -> bytes:
        return json.dumps(
            {
                "writer": bytes(self.writer).hex(),
                "towns": {
                    town: [crypto.town_keys_to_secret(k).hex() for k in ring]
                    for town, ring in sorted(self.rings.items())
                },
            }
        ).encode()

    def save(self, data_dir: Path, passphrase: str) -> None:
        path = data_dir / CUSTODY_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(crypto.seal_secret(self._to_bytes(), passphrase))
        temporary.chmod(0o600)
        temporary.replace(path)

    @classmethod
    def load(cls, data_dir: Path, passphrase: str) -> Custody:
        path = data_dir / CUSTODY_FILE
        if not path.exists():
            raise CustodyError(f"鍵の保管ファイルがありません: {path}")
        try:
            data = json.loads(crypto.open_secret(path.read_bytes(), passphrase))
        except crypto.WrongPassword as exc:
            raise CustodyError(
                "鍵の保管ファイルを開けません。パスフレーズを確認してください。"
            ) from exc
        rings = {
            town: crypto.KeyRing(
                town, [crypto.town_keys_from_secret(bytes.fromhex(k)) for k in keys]
            )
            for town, keys in data["towns"].items()
        }
        return cls(rings, SigningKey(bytes.fromhex(data["writer"])))

    @classmethod
    def open_or_create(cls, data_dir: Path, passphrase: str) -> Custody:
        if (data_dir / CUSTODY_FILE).exists():
            return cls.load(data_dir, passphrase)
        custody = cls.create()
        custody.save(data_dir, passphrase)
        return custody

    # ------------------------------------------------------------------ clerks

    def provision_clerk(
        self,
        storage: Storage,
        clerk: Clerk,
        password: str,
        kdf_limits: crypto.KdfLimits | None = None,
    ) -> None:
        """Give a clerk new keys wrapped under `password` (first issue or a reset by an
        administrator): needs no one else's password, only the custodian's town keys."""
        record = new_credential(
            self.ring(clerk.town_code),
            clerk,
            password,
            kdf_limits=kdf_limits or crypto.DEFAULT_KDF_LIMITS,
        )
        storage.save(
            (clerk.town_code, "credential", clerk.login_id),
            json.dumps(record, ensure_ascii=False).encode(),
        )


def rotate_town(
    custody: Custody, storage: Storage, town: str, revoked: frozenset[str] = frozenset()
) -> crypto.TownKeys:
    """Start a new key epoch for a town (a lost box, a revoked clerk, or routine): every
    clerk not revoked gets the new keys sealed to their public key and a new certificate
    — no password needed —, a revoked clerk's credential is removed. The caller then
    compacts the town (`HubReplica.compact`), which seals its documents under the new
    epoch. Revocation protects only what is written from now on: old blobs stay readable
    with old keys until compaction trims them."""
    ring = custody.ring(town)
    new = crypto.rotate(ring.current)
    ring.add(new)
    now = datetime.now(UTC)
    for key, raw in storage.load_range((town, "credential")):
        if key[2] in revoked:
            storage.remove(key)
            continue
        record = json.loads(raw)
        old = crypto.ClerkCertificate.from_json(record["certificate"])
        clerk = crypto.ClerkPublic(town, old.login_id, old.sealing_key, old.verify_key)
        certificate = crypto.issue_clerk_certificate(
            new, clerk, roles=old.roles, on_roster=old.on_roster,
            deputy_rank=old.deputy_rank, issued_at=now,
        )  # fmt: skip
        record["certificate"] = certificate.to_json()
        record["town_keys"][str(new.epoch)] = crypto.seal_town_keys(new, clerk).hex()
        storage.save(key, json.dumps(record, ensure_ascii=False).encode())
    storage.save((town, "public"), json.dumps(ring.public.to_json()).encode())
    return new


def partner_copy_marker(town: str) -> StorageKey:
    return (town, "partner-without-my-number")


def credential_is_for_roster(record: bytes) -> bool:
    data = json.loads(record)
    return bool(data["certificate"]["on_roster"])
