"""The hub as key custodian (BRIEF §3): every town's key ring and the hub's writer key.

At rest the keys exist only in `DATA/custody.sealed`, encrypted under the operator's
passphrase (argon2id + XChaCha20-Poly1305, `shared.crypto.seal_secret`); the operator
unseals them when the hub starts. Nothing else in the data folder holds a private key.

The custodian publishes, for the boxes:
- each town's documents as sealed blobs (sealed to the town's public key, signed by the
  hub's writer key): a box stores and relays them and can open none of them by itself;
- each clerk's credential record: the clerk's keys wrapped under their password, the
  town's keys sealed to the clerk, and the clerk's town-signed certificate. Partner
  boxes receive only the records of clerks on the town's emergency roster.

Storage keys (next to the hub's registry store, see `cloud.store`):

    (town, "sealed", document)    sealed blob of the document's latest snapshot
    (town, "sealed-partner", doc) the same without 個人番号, for partner boxes (option)
    (town, "credential", login)   a clerk's credential record (JSON)
    (town, "public")              the town's current public keys (JSON)
    ("federation", "hub-writer")  the hub's writer verify key (hex)
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nacl.signing import SigningKey

from shared import crypto
from shared.blobs import BlobFields, seal_blob
from shared.clerk_records import new_credential
from shared.crdt import RecordDocument
from shared.model import Clerk
from shared.registry import TownRegistry
from shared.storage import Storage, StorageKey

HUB_WRITER_ID = "hub"
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

    # ------------------------------------------------------------------ publishing

    def publish_documents(
        self,
        storage: Storage,
        registry: TownRegistry,
        names: list[str] | None = None,
        *,
        partner_without_my_number: bool = False,
    ) -> None:
        """Seal the latest snapshot of each named document (all by default). With the
        town's option `partner_without_my_number`, partner boxes get a second sealed copy
        of each document with every 個人番号 emptied — rebuilt without history, since a
        snapshot carries every earlier value in its history."""
        public = self.ring(registry.town_code).public
        seq = itertools.count(_sequence_base())
        items: list[tuple[StorageKey, bytes]] = []

        def sealed(name: str, data: bytes) -> bytes:
            fields = BlobFields(f"{registry.town_code}/{name}", HUB_WRITER_ID, next(seq))
            return seal_blob(data, fields, public, self.writer)

        for name in sorted(names if names is not None else registry.documents):
            document = registry.documents[name]
            full = sealed(name, document.export_snapshot())
            items.append(((registry.town_code, "sealed", name), full))
            if partner_without_my_number:
                stripped = without_my_number(document)
                items.append(((registry.town_code, "sealed-partner", name), sealed(name, stripped)))
        items.append(((registry.town_code, "public"), json.dumps(public.to_json()).encode()))
        if partner_without_my_number:
            items.append((partner_copy_marker(registry.town_code), b"1"))
        items.append((HUB_WRITER_KEY, bytes(self.writer.verify_key).hex().encode()))
        storage.save_many(items)

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
    re-publishes the documents, which seals them under the new epoch. Revocation protects
    only what is written from now on: old blobs stay readable with old keys."""
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
    return new


def partner_copy_marker(town: str) -> StorageKey:
    return (town, "partner-without-my-number")


def without_my_number(document: RecordDocument) -> bytes:
    """A history-free copy of a document with every resident's 個人番号 emptied."""
    copy = RecordDocument(document.name)
    for table in document.tables():
        for record_id, record in document.records(table).items():
            if "my_number" in record:
                record = {**record, "my_number": ""}
            copy.set_fields(table, record_id, record)
    copy.commit("partner copy without 個人番号")
    return copy.export_snapshot()


def _sequence_base() -> int:
    # Writer sequence numbers only need to grow: microseconds since the epoch, plus a
    # random offset so two hub processes started in the same microsecond never collide.
    return int(datetime.now(UTC).timestamp() * 1_000_000) * 16 + secrets.randbelow(16)


def credential_is_for_roster(record: bytes) -> bool:
    data = json.loads(record)
    return bool(data["certificate"]["on_roster"])
