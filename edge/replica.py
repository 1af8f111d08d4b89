"""A box's sealed replicas: what it keeps on disk, and how a clerk's login opens a town.

On disk (the box's `replica.db`, through the storage seam) there is nothing a thief can
read: documents as blobs sealed to their town, clerks' keys wrapped under their
passwords, towns' public keys and the hub's writer key. A town opens only in memory,
when one of its clerks logs in: the password unwraps the clerk's keys, which open the
town's keys, which open the blobs (BRIEF §3). A restart forgets all of it.

    (town, "blob", document)        sealed blob as the hub published it
    (town, "credential", login)     the clerk's credential record (wrapped keys)
    (town, "public")                the town's public keys (JSON)
    (town, "certificates")          its clerks' town-signed certificates (JSON list)
    (town, "as-of")                 the hub's as-of time for the town
    ("federation", "hub-writer")    the hub's writer key, pinned at first contact
    ("federation", "towns")         the towns the box holds
    ("federation", "names")         their names, for the login screen

Errors a clerk can meet are `UnlockError`s with a Japanese message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import httpx
from nacl.signing import VerifyKey

from shared import crypto
from shared.blobs import BlobError, blob_id, open_blob, verify_blob
from shared.crypto import ClerkCertificate, KeyRing
from shared.registry import TownRegistry
from shared.storage import Storage, StorageKey

log = logging.getLogger(__name__)

HUB_WRITER_ID = "hub"
_HUB_WRITER: StorageKey = ("federation", "hub-writer")
_TOWNS: StorageKey = ("federation", "towns")
_NAMES: StorageKey = ("federation", "names")


class UnlockError(Exception):
    """A login that cannot open the town (the message is for the clerk)."""


class ReplicaError(Exception):
    """The hub sent something that does not verify; nothing of it was stored."""


@dataclass(frozen=True, slots=True)
class Unlocked:
    keyring: KeyRing
    certificate: ClerkCertificate
    display_name: str
    clerk_keys: crypto.ClerkKeys


class BoxReplica:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # ------------------------------------------------------------------ reading

    def towns(self) -> list[str]:
        data = self.storage.load(_TOWNS)
        return [] if data is None else list(json.loads(data))

    def town_name(self, town: str) -> str:
        data = self.storage.load(_NAMES)
        return str((json.loads(data) if data else {}).get(town, town))

    def as_of(self, town: str) -> str:
        data = self.storage.load((town, "as-of"))
        return "" if data is None else data.decode()

    def _writer_lookup(self, writer_id: str) -> VerifyKey | None:
        pinned = self.storage.load(_HUB_WRITER)
        if writer_id != HUB_WRITER_ID or pinned is None:
            return None
        return VerifyKey(bytes.fromhex(pinned.decode()))

    def certificates(self, town: str) -> list[ClerkCertificate]:
        """The town's clerk certificates (checked by whoever relies on them)."""
        data = self.storage.load((town, "certificates"))
        if data is None:
            return []
        return [ClerkCertificate.from_json(c) for c in json.loads(data)]

    def town_public(self, town: str) -> crypto.TownPublic | None:
        data = self.storage.load((town, "public"))
        return None if data is None else crypto.TownPublic.from_json(json.loads(data))

    # ------------------------------------------------------------------ pulling

    def pull(self, client: httpx.Client, box_town: str) -> list[str]:
        """Fetch what changed at the hub for every town; returns the towns updated.
        Each blob is verified against the pinned hub key before it is stored."""
        federation = client.get("/api/federation").raise_for_status().json()
        if federation["hub_writer"] is None:
            return []
        pinned = self.storage.load(_HUB_WRITER)
        offered = federation["hub_writer"].encode()
        if pinned is None:
            self.storage.save(_HUB_WRITER, offered)  # trust on first contact, until enrolment
        elif pinned != offered:
            raise ReplicaError("the hub's writer key changed; refusing its data")
        self.storage.save_many(
            [
                (_TOWNS, json.dumps(sorted(federation["towns"])).encode()),
                (_NAMES, json.dumps(federation.get("names", {}), ensure_ascii=False).encode()),
            ]
        )
        updated = []
        for town, public in sorted(federation["towns"].items()):
            if self._pull_town(client, town, public, box_town):
                updated.append(town)
        return updated

    def _pull_town(
        self, client: httpx.Client, town: str, public: dict[str, object], box_town: str
    ) -> bool:
        manifest = client.get(f"/api/replica/{town}", params={"box_town": box_town})
        if manifest.status_code == 404:
            return False
        listing = manifest.raise_for_status().json()
        items: list[tuple[StorageKey, bytes]] = []
        for name, wanted in sorted(listing["documents"].items()):
            current = self.storage.load((town, "blob", name))
            if current is not None and blob_id(current).hex() == wanted:
                continue
            blob = client.get(
                f"/api/replica/{town}/blobs/{name}", params={"box_town": box_town}
            ).raise_for_status().content
            try:
                header = verify_blob(blob, self._writer_lookup)
            except BlobError as exc:
                raise ReplicaError(f"{town}/{name}: {exc}") from exc
            if header.town != town or header.document != f"{town}/{name}":
                raise ReplicaError(f"{town}/{name}: blob header names {header.document!r}")
            items.append(((town, "blob", name), blob))
        for login in listing["credentials"]:
            response = client.get(
                f"/api/replica/{town}/credentials/{login}", params={"box_town": box_town}
            )
            items.append(((town, "credential", login), response.raise_for_status().content))
        certificates = client.get(f"/api/replica/{town}/certificates").raise_for_status()
        items.append(((town, "certificates"), certificates.content))
        items.append(((town, "public"), json.dumps(public).encode()))
        items.append(((town, "as-of"), str(listing["as_of"]).encode()))
        # A clerk changed on this box and not yet at the hub (edge/clerks.py) keeps what
        # the box has: the hub's copy is older.
        changed = {
            (town, "credential", k[2]) for k, _ in self.storage.load_range((town, "clerk-outbox"))
        }
        items = [(key, value) for key, value in items if key not in changed]
        stale = {k for k, _ in self.storage.load_range((town, "credential"))} - {
            (town, "credential", login) for login in listing["credentials"]
        } - changed
        self.storage.save_many(items)
        for key in stale:  # a clerk taken off the roster: their wrapped keys leave the box
            self.storage.remove(key)
        return True

    # ------------------------------------------------------------------ unlocking

    def unlock(self, town: str, login_id: str, password: str) -> Unlocked:
        """Check a clerk's password by unwrapping their keys and open the town's key ring.
        Raises UnlockError (never says which of login id or password was wrong)."""
        failed = UnlockError("ログインIDまたはパスワードが正しくありません。")
        record_bytes = self.storage.load((town, "credential", login_id))
        public = self.town_public(town)
        if record_bytes is None or public is None:
            raise failed
        record = json.loads(record_bytes)
        try:
            clerk_keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), password)
        except crypto.WrongPassword:
            raise failed from None
        certificate = crypto.ClerkCertificate.from_json(record["certificate"])
        try:
            crypto.verify_clerk_certificate(certificate, public)
            keys = [
                crypto.open_town_keys(bytes.fromhex(sealed), clerk_keys)
                for sealed in record["town_keys"].values()
            ]
        except crypto.CryptoError as exc:
            log.warning("credential of %s/%s does not verify: %s", town, login_id, exc)
            raise UnlockError(
                "資格情報を確認できません。システム管理者に連絡してください。"
            ) from None
        ring = KeyRing(town, keys)
        if ring.public != public:
            raise UnlockError("資格情報を確認できません。システム管理者に連絡してください。")
        if certificate.login_id != login_id:
            raise failed
        return Unlocked(ring, certificate, str(record.get("name", login_id)), clerk_keys)

    def open_registry(self, town: str, keyring: KeyRing, shards: int) -> TownRegistry:
        registry = TownRegistry(town, shards=shards)
        for key, blob in self.storage.load_range((town, "blob")):
            _, plaintext = open_blob(blob, keyring, self._writer_lookup)
            registry.load(key[2], plaintext)
        return registry
