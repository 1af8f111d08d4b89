"""A box's sealed replicas: what it keeps on disk, and how a clerk's login opens a town.

On disk (the box's `replica.db`, through the storage seam) there is nothing a thief can
read: every town's documents as the sync log's blobs, sealed to their town (written by
the sync agent, `edge.sync_agent`; layout in `shared.sync.log`), clerks' keys wrapped
under their passwords, towns' public keys and the hub's writer key. A town opens only in
memory, when one of its clerks logs in: the password unwraps the clerk's keys, which open
the town's keys, which open the blobs (BRIEF §3). A restart forgets all of it.

What this module fetches from the hub beside the sync log (`pull`, no documents):

    (town, "credential", login)     the clerk's credential record (wrapped keys)
    (town, "public")                the town's public keys (JSON)
    (town, "certificates")          its clerks' town-signed certificates (JSON list)
    ("federation", "hub-writer")    the hub's writer key, pinned at first contact: the
                                    authority whose as-of and compaction notices count
    ("federation", "towns")         the towns the box holds
    ("federation", "names")         their names, for the login screen
    ("federation", "scopes")        towns whose partner boxes hold a separate copy without
                                    個人番号, and its scope (`shared.sync.scopes`)

A town's as-of time comes from the hub's signed as-of statement the sync log holds
(`freshness`): the export time of the newest statement whose blobs are all here, with a
warning when the hub has newer data than the box holds, or has said nothing for too long.

Errors a clerk can meet are `UnlockError`s with a Japanese message.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from nacl.signing import VerifyKey

from shared import crypto
from shared.crypto import ClerkCertificate, KeyRing
from shared.registry import TownRegistry
from shared.storage import Storage, StorageKey
from shared.sync.checkpoint import read_checkpoint, save_checkpoint
from shared.sync.identity import Identity, writer_id_of
from shared.sync.notices import Freshness, freshness
from shared.sync.replica import SyncReplica, load_or_create_identity
from shared.sync.scopes import partner_scope, scope_ring
from shared.wareki import to_wareki

log = logging.getLogger(__name__)

# An opening that replayed more blobs than this writes a new checkpoint (a few daily
# imports' worth replay in well under a second; the first full import's do not).
CHECKPOINT_AFTER_BLOBS = 16
_HUB_WRITER: StorageKey = ("federation", "hub-writer")
_SCOPES: StorageKey = ("federation", "scopes")  # towns whose partners hold a partner copy
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

    def hub_writer_id(self) -> str | None:
        """The pinned hub's writer id: the authority of as-of and compaction notices."""
        pinned = self.storage.load(_HUB_WRITER)
        return writer_id_of(VerifyKey(bytes.fromhex(pinned.decode()))) if pinned else None

    def scope_of(self, town: str) -> str:
        """The log scope this box holds of the town: the town itself, or on a partner
        box of a town that keeps 個人番号 out, its partner copy."""
        return held_scope(self.storage, town)

    def freshness(self, town: str, now: float | None = None) -> Freshness:
        moment = time.time() if now is None else now
        return freshness(self.storage, self.scope_of(town), moment)

    def as_of(self, town: str) -> str:
        """The export time the box's data of the town is as of ("" before any)."""
        return self.freshness(town).as_of

    def as_of_line(self, town: str, now: float | None = None) -> tuple[str, str]:
        """The town's as-of time as a clerk reads it, and a warning ("" if none)."""
        fresh = self.freshness(town, now)
        label = as_of_label(fresh.as_of) if fresh.as_of else "不明（ハブからまだ届いていません）"
        warnings = []
        if fresh.starved and fresh.hub_as_of:
            warnings.append(
                f"ハブには{as_of_label(fresh.hub_as_of)}時点のデータがありますが、"
                "この機器にはまだ届いていません。ネットワークを確認し、"
                "しばらくしても変わらなければシステム管理者に連絡してください。"
            )
        if fresh.stale:
            hours = int(((time.time() if now is None else now) - fresh.issued) // 3600)
            warnings.append(
                f"ハブからの時点情報が{hours}時間届いていません。"
                "データが古い可能性があります（異動の処理は控えてください）。"
            )
        return label, "".join(warnings)

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
        """Fetch every town's public keys, clerks' credentials and certificates (the
        documents come through the sync log, never this way); returns the towns
        updated. The hub's writer key is pinned at first contact."""
        federation = client.get("/api/federation").raise_for_status().json()
        if federation["hub_writer"] is None:
            return []
        pinned = self.storage.load(_HUB_WRITER)
        offered = federation["hub_writer"].encode()
        if pinned is None:
            self.storage.save(_HUB_WRITER, offered)  # trust on first contact, until enrolment
        elif pinned != offered:
            raise ReplicaError("the hub's writer key changed; refusing its data")
        scopes = federation.get("scopes", {})
        self.storage.save_many(
            [
                (_TOWNS, json.dumps(sorted(federation["towns"])).encode()),
                (_NAMES, json.dumps(federation.get("names", {}), ensure_ascii=False).encode()),
                (_SCOPES, json.dumps(scopes if isinstance(scopes, dict) else {}).encode()),
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
        for login in listing["credentials"]:
            response = client.get(
                f"/api/replica/{town}/credentials/{login}", params={"box_town": box_town}
            )
            items.append(((town, "credential", login), response.raise_for_status().content))
        certificates = client.get(f"/api/replica/{town}/certificates").raise_for_status()
        items.append(((town, "certificates"), certificates.content))
        items.append(((town, "public"), json.dumps(public).encode()))
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
        """The town's documents from the sync log (a one-off reader; a town's worker keeps
        its `TownReader` to follow later blobs)."""
        return TownReader(self.storage, town, shards).open(keyring)


def as_of_label(as_of: str) -> str:
    """An export time as a clerk reads it: 令和8年11月26日 2時00分."""
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        return as_of or "不明"
    return f"{to_wareki(moment.date())} {moment.hour}時{moment.minute:02d}分"


def held_scope(storage: Storage, town: str) -> str:
    if storage.load(("sync", "town", town)) is None:
        copy = partner_scope(town)
        if storage.load(("sync", "town", copy)) is not None:
            return copy
    return town


class TownReader:
    """One town opened from the box's sync log, following the blobs that arrive later
    (the box's agent writes them to the same store from another process). Edits made
    here are this reader's own writer's blobs: each (box, town) has its own writer id,
    kept in the store, since only one process at a time writes under it."""

    def __init__(self, storage: Storage, town: str, shards: int) -> None:
        self.town = town
        self.shards = shards
        self.storage = storage
        self.scope = held_scope(storage, town)
        pinned = BoxReplica(storage).hub_writer_id
        identity = load_or_create_identity(storage, ("sync", "identity", "town", town))
        self.sync = SyncReplica(storage, identity, shards=shards, authority=pinned)

    @property
    def writer(self) -> Identity:
        return self.sync.writer

    def open(self, keyring: KeyRing) -> TownRegistry:
        """The town's registry (on a partner box of a town that keeps 個人番号 out, its
        partner copy, under the town's own code): from this reader's checkpoint, if one
        still matches the log, and the blobs after it; else from the whole log."""
        if keyring.town != self.town:
            raise UnlockError("この町村の鍵ではありません。")
        ring = keyring if self.scope == self.town else scope_ring(keyring, self.scope)
        start = read_checkpoint(self.storage, self.sync.log, ring, self.writer)
        opened = self.sync.open_town(ring, start=start)
        if self.scope == self.town:
            return opened
        return TownRegistry(self.town, shards=self.shards, documents=opened.documents)

    def checkpoint_due(self) -> bool:
        """Whether the last opening replayed enough blobs that a new checkpoint pays."""
        return self.sync.replayed > CHECKPOINT_AFTER_BLOBS

    def save_checkpoint(self) -> None:
        """Seal the open town's documents as this reader's checkpoint (to the town's
        public key: nothing readable at rest), for the next opening to start from."""
        save_checkpoint(self.storage, self.scope, self.sync.checkpoint(self.scope))

    def follow(self) -> bool:
        """Apply what arrived since; True if the town's documents changed."""
        before = self.sync.changes
        self.sync.log.refresh()
        return self.sync.changes != before
