"""The hub's replica: its blob log — the one path every town's data takes to the boxes —
opened with the custody's key rings.

Every change to a town's documents is a sealed blob in this log: the importer's deltas
(written under the hub's writer key, `publish`), the boxes' edits (received by sync and
applied here like anywhere else), the compaction snapshots (`compact`). The hub keeps no
other copy of the documents; boxes open a town from the same blobs. Beside the log:

- **as-of statements** (`announce_as_of`): after each import the hub signs, per town, the
  core system's export time and the hub writer's sequence number the import ends at — a
  cleartext notice every replica forwards (`shared.sync.notices`), so a box shows how
  fresh its data is and notices when it is starved of newer data;
- **contact** (`observe`): every signed exchange tells the hub a replica's have-vector;
  the replica-health view (`health`) and compaction's acknowledgements come from it;
- **review** of concurrent edits: a box's edit and another edit of the same field made
  without seeing each other (Loro keeps one silently) are listed for an operator, with
  both values (`review_items`); so is an import that overwrote a field a box had edited.

Storage keys (beside `cloud.store`'s and the log's):

    ("hub", "contact", peer)            {"last_contact": s, "towns": {town: {"have":
                                         {writer: seq}, "at": s}}} (JSON)
    ("hub", "review", town, item id)    a review item (JSON, docs/sync-protocol.md §10)
    ("hub", "reviewed", town, writer)   the seq up to which that writer's blobs were
                                        checked for concurrent edits
    ("hub", "as-of-history", town)      the as-of statements issued, newest last (JSON)
    ("federation", "hub-writer")        the hub writer's verify key (hex), for the boxes

Only the process that holds the custody writes with the hub's writer key, and of those
only one at a time: `renkei import` (imports and compactions). The hub's web process
applies what arrives and reviews it, but writes no blob of its own.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nacl.public import SealedBox

from cloud.custody import HUB_WRITER_KEY, Custody
from cloud.store import TownStore, known_towns
from shared.crdt import concurrent_edits
from shared.crypto import KeyRing, TownPublic
from shared.registry import DEFAULT_SHARDS, TownRegistry
from shared.storage import Storage, StorageKey
from shared.sync import content
from shared.sync.identity import Identity, writer_id_of
from shared.sync.log import BlobLog, BlobRef, Have
from shared.sync.notices import AS_OF, BASE, Notice, fresh_n, sign_notice
from shared.sync.replica import SyncReplica
from shared.sync.scopes import scope_ring, town_of

log = logging.getLogger(__name__)

COMPACTION_WINDOW_DAYS = 30  # replicas seen within this many days must have acknowledged
COMPACT_AFTER_BLOBS = 500  # updates since the last base that make a compaction due
_HISTORY = 100  # as-of statements remembered per town


def hub_writer_id(storage: Storage) -> str | None:
    """The hub writer's id as published for the boxes (None before the first import)."""
    from nacl.signing import VerifyKey

    pinned = storage.load(HUB_WRITER_KEY)
    return writer_id_of(VerifyKey(bytes.fromhex(pinned.decode()))) if pinned else None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Compaction:
    town: str
    covers: dict[str, int]
    snapshots: tuple[int, int]
    epoch: int
    removed: int  # blobs trimmed from the hub's own log
    acknowledged_by: int  # replicas whose acknowledgements bounded the trim


class HubReplica:
    def __init__(
        self,
        storage: Storage,
        custody: Custody | None = None,
        *,
        shards: int = DEFAULT_SHARDS,
        clock: Any = time.time,
        review: bool = False,
    ) -> None:
        self.storage = storage
        self.custody = custody
        self.clock = clock
        if custody is not None:
            self.identity: Identity | None = Identity(custody.writer)
            authority: str | None = self.identity.writer_id
            if storage.load(HUB_WRITER_KEY) is None:
                storage.save(HUB_WRITER_KEY, bytes(custody.writer.verify_key).hex().encode())
        else:  # a hub without its keys relays, and cannot read or write anything
            self.identity = None
            authority = hub_writer_id(storage)
        self.replica = SyncReplica(
            storage,
            self.identity or Identity.generate(),
            shards=shards,
            authority=authority,
        )
        if review:
            self.replica.on_applied = self._review
        self._review_enabled = review
        # peer id → (box name, town), from the hub's enrolment register when it has one
        self.directory: Callable[[str], tuple[str, str] | None] | None = None

    @property
    def log(self) -> BlobLog:
        return self.replica.log

    @property
    def peer_id(self) -> str:
        """The hub's id in sync sessions: its writer id (as the boxes pin it)."""
        if self.identity is not None:
            return self.identity.writer_id
        return hub_writer_id(self.storage) or "hub"

    def towns(self) -> list[str]:
        return sorted(set(known_towns(self.storage)) | set(self.log.towns()))

    # ------------------------------------------------------------------ opening

    def _custody(self) -> Custody:
        if self.custody is None:
            raise RuntimeError("the hub's keys are sealed: start it with the passphrase")
        return self.custody

    def town_public(self, town: str) -> TownPublic:
        """The town's current public keys (what review items are sealed to)."""
        return self._custody().ring(town_of(town)).public

    def registry(self, town: str) -> TownRegistry:
        """The town's documents as the log has them (opened on first use)."""
        if not self.replica.is_open(town):
            self.log.refresh()
            ring = scope_ring(self._custody().ring(town_of(town)), town)
            review_after = self._reviewed(town) if self._review_enabled else None
            self.replica.open_town(ring, review_after=review_after)
        else:
            self.log.refresh()
        return self.replica.registries[town]

    def open_all(self) -> None:
        if self.custody is None:
            return
        for town in self.towns():
            if town_of(town) in self.custody.rings:
                self.registry(town)

    # ------------------------------------------------------------------ writing

    def publish(
        self,
        town: str,
        deltas: Mapping[str, bytes],
        extra: Iterable[tuple[StorageKey, bytes]] = (),
    ) -> list[BlobRef]:
        """Seal deltas already applied to `registry(town)` as the hub's next blobs, with
        `extra` storage items in the same transaction (an import's state)."""
        self._custody()
        return self.replica.publish(town, deltas, extra=extra)

    def migrate_legacy(self, town: str) -> int:
        """An older hub's plaintext documents become the log's first snapshots (once);
        returns how many documents were sealed."""
        store = TownStore(self.storage, town)
        if self.log.count(town) or self.log.floor(town):
            store.remove_legacy()  # a migration interrupted after sealing
            return 0
        legacy = store.legacy_registry(self.replica.shards)
        if legacy is None:
            return 0
        registry = self.registry(town)
        snapshots = legacy.snapshots()
        for name, data in snapshots.items():
            registry.load(name, data)
        self.replica.publish(town, snapshots, content.Kind.SNAPSHOT)
        store.remove_legacy()
        log.info("sealed %d legacy documents of %s into the log", len(snapshots), town)
        return len(snapshots)

    def public_entry(self, town: str) -> tuple[StorageKey, bytes]:
        ring = self._custody().ring(town)
        return (town, "public"), json.dumps(ring.public.to_json()).encode()

    def announce_as_of(self, town: str, as_of: str) -> Notice:
        """Sign the town's "newest data as of" statement: the export time, and the hub
        writer's last sequence number — a box holding the hub's blobs up to there has
        the core system's data as of then."""
        assert self.identity is not None, "announcing needs the hub's keys"
        writer = self.identity.writer_id
        covers = {writer: self.log.next_seq(town, writer) - 1}
        notice = sign_notice(
            self.identity, AS_OF, town, fresh_n(), as_of=as_of, covers=covers,
            issued=round(self.clock(), 3),
        )  # fmt: skip
        history = self._as_of_history(town)
        history.append({"as_of": as_of, "covers": covers, "n": notice.n})
        self.storage.save(
            ("hub", "as-of-history", town), json.dumps(history[-_HISTORY:]).encode()
        )
        self.log.accept_notices([notice], [town])
        return notice

    def _as_of_history(self, town: str) -> list[dict[str, Any]]:
        raw = self.storage.load(("hub", "as-of-history", town))
        return [] if raw is None else list(json.loads(raw))

    # ------------------------------------------------------------------ contact

    def observe(self, peer: str, towns: tuple[str, ...], have: Have, now: float) -> None:
        """A replica's signed exchange: remember when, and what it holds (its
        acknowledgement for compaction, its lag for the health view)."""
        moment = self.clock()
        key: StorageKey = ("hub", "contact", peer)
        raw = self.storage.load(key)
        record = {"towns": {}} if raw is None else json.loads(raw)
        record["last_contact"] = moment
        for town in towns:
            held = have.get(town, {})
            record["towns"][town] = {
                "have": {w: h.contiguous for w, h in sorted(held.items())},
                "at": moment,
            }
        self.storage.save(key, json.dumps(record, sort_keys=True).encode())

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {k[2]: json.loads(v) for k, v in self.storage.load_range(("hub", "contact"))}

    def health(self) -> dict[str, Any]:
        """The replica-health view: every replica that has synced with the hub, the towns
        it holds, how far behind each is, its last contact."""
        from shared.sync.log import WriterHave

        now = self.clock()
        self.log.refresh()
        towns = {}
        for town in self.towns():
            newest = self.log.notices.get(town, AS_OF)
            towns[town] = {
                "name": (TownStore(self.storage, town).town_settings() or {}).get("name", town),
                "blobs": self.log.count(town),
                "as_of": newest.as_of if newest else "",
            }
        replicas = []
        for peer, record in sorted(self.contacts().items()):
            held_towns = {}
            behind_any = False
            for town, entry in sorted(record.get("towns", {}).items()):
                have = {town: {w: WriterHave(s) for w, s in entry["have"].items()}}
                missing = self.log.count_missing(have, town)
                as_of = self._as_of_satisfied(town, entry["have"])
                behind_any |= missing > 0
                held_towns[town] = {
                    "missing_blobs": missing,
                    "as_of": as_of,
                    "current": missing == 0,
                    "reported_at": _iso(entry["at"]),
                }
            last = float(record.get("last_contact", 0))
            replicas.append(
                {
                    "peer": peer,
                    "label": self._label(peer),
                    "last_contact": _iso(last),
                    "seconds_since_contact": round(now - last, 1),
                    "behind": behind_any,
                    "towns": held_towns,
                }
            )
        return {
            "generated_at": _iso(now),
            "hub": self.peer_id,
            "towns": towns,
            "replicas": replicas,
        }

    def _label(self, peer: str) -> str:
        known = self.directory(peer) if self.directory is not None else None
        return known[0] if known else peer_label(self.storage, peer)

    def _as_of_satisfied(self, town: str, have: Mapping[str, int]) -> str:
        for entry in reversed(self._as_of_history(town)):
            if all(have.get(w, 0) >= s for w, s in entry["covers"].items()):
                return str(entry["as_of"])
        return ""

    # ------------------------------------------------------------------ review

    def _reviewed(self, town: str) -> dict[str, int]:
        return {
            key[3]: int(value)
            for key, value in self.storage.load_range(("hub", "reviewed", town))
        }

    def _review(
        self, town: str, name: str, ref: BlobRef, record: content.Content, before: bytes
    ) -> None:
        items: list[tuple[StorageKey, bytes]] = []
        if record.kind is content.Kind.UPDATE:
            document = self.replica.registries[town].documents[name]
            for table, record_id, field, theirs, previous in concurrent_edits(
                document, record.data, before
            ):
                current = document.get(table, record_id)
                kept = current if field == "*" else (current or {}).get(field)
                item = review_item(
                    town, name, table, record_id, field, "concurrent", kept,
                    [
                        {"writer": ref.writer, "seq": ref.seq, "value": theirs},
                        {"writer": "", "seq": 0, "value": previous},
                    ],
                    self.clock(),
                )  # fmt: skip
                sealed = sealed_review(item, self.town_public(town))
                items.append((("hub", "review", town, item["id"]), sealed))
                log.warning("concurrent edit of %s/%s %s.%s listed", town, record_id, table, field)
        items.append((("hub", "reviewed", town, ref.writer), str(ref.seq).encode()))
        self.storage.save_many(items)

    def review_items(
        self, town: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        prefix: StorageKey = ("hub", "review") if town is None else ("hub", "review", town)
        items = [json.loads(v) for _, v in self.storage.load_range(prefix)]
        if status is not None:
            items = [i for i in items if i["status"] == status]
        items = [reveal_review(i, self._ring_or_none(i["town"])) for i in items]
        return sorted(items, key=lambda i: (i["detected_at"], i["id"]))

    def _ring_or_none(self, town: str) -> KeyRing | None:
        try:
            return self._custody().ring(town_of(town))
        except (RuntimeError, KeyError):  # relay-only hub (no custody at hand): no values
            return None

    def resolve(self, town: str, item_id: str, by: str, note: str = "") -> dict[str, Any]:
        key: StorageKey = ("hub", "review", town, item_id)
        raw = self.storage.load(key)
        if raw is None:
            raise KeyError(item_id)
        item = json.loads(raw)
        item.update(status="resolved", resolved_by=by, note=note,
                    resolved_at=_iso(self.clock()))  # fmt: skip
        self.storage.save(key, _json(item))
        return reveal_review(item, self._ring_or_none(town))

    # ------------------------------------------------------------------ compaction

    def compaction_due(self, town: str) -> bool:
        base = self.log.notices.get(town, BASE)
        ring = self._custody().ring(town_of(town))
        sealed_under = 1 if base is None else int(base.body.get("epoch", 1))
        if sealed_under < ring.current.epoch:
            return True  # a key rotation since: snapshots under the new key
        return self.log.count(town) - len(self.registry(town).documents) > COMPACT_AFTER_BLOBS

    def compact(self, town: str, *, window_days: float = COMPACTION_WINDOW_DAYS) -> Compaction:
        """Seal a snapshot of every document under the town's current key, then trim the
        log below what the snapshots hold *and* every replica seen in the last
        `window_days` has acknowledged. A replica not seen for longer recovers from the
        snapshots when it returns (they are full Loro snapshots: its own unsynced edits
        still merge)."""
        assert self.identity is not None, "compaction needs the hub's keys"
        registry = self.registry(town)
        applied = self.replica.applied_through(town)
        since = self.clock() - window_days * 86400
        acks = [
            record["towns"][town]["have"]
            for record in self.contacts().values()
            if float(record.get("last_contact", 0)) >= since and town in record.get("towns", {})
        ]
        covers = {
            writer: min([seq, *(ack.get(writer, 0) for ack in acks)])
            for writer, seq in applied.items()
        }
        covers = {w: s for w, s in covers.items() if s > 0}
        snapshots = {name: doc.export_snapshot() for name, doc in registry.documents.items()}
        refs = self.replica.publish(town, snapshots, content.Kind.SNAPSHOT)
        first, last = min(r.seq for r in refs), max(r.seq for r in refs)
        epoch = self._custody().ring(town_of(town)).current.epoch
        base = sign_notice(
            self.identity, BASE, town, fresh_n(), covers=covers, snapshots=[first, last],
            epoch=epoch, issued=round(self.clock(), 3),
        )  # fmt: skip
        before = self.log.trimmed
        self.log.accept_notices([base], [town])
        removed = self.log.trimmed - before
        log.info("compacted %s: %d snapshots, %d blobs trimmed", town, len(refs), removed)
        return Compaction(town, covers, (first, last), epoch, removed, len(acks))


def review_item(
    town: str,
    document: str,
    table: str,
    record_id: str,
    field: str,
    kind: str,
    kept: Any,
    values: list[dict[str, Any]],
    now: float,
) -> dict[str, Any]:
    return {
        "id": f"{int(now * 1000):013d}-{secrets.token_hex(4)}",
        "town": town,
        "document": document,
        "table": table,
        "record": record_id,
        "field": field,
        "kind": kind,
        "kept": kept,
        "values": values,
        "detected_at": _iso(now),
        "status": "open",
    }


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode()


def sealed_review(item: dict[str, Any], town: TownPublic) -> bytes:
    """A review item as stored: the field values (a resident's name, address...) sealed
    to the town's current key, so the hub's database holds no personal data in the clear;
    only an unsealed hub (custody opened by the operator) shows them (`reveal_review`)."""
    values = {"kept": item["kept"], "values": item["values"]}
    stored = {k: v for k, v in item.items() if k not in values}
    stored["sealed"] = SealedBox(town.sealing_key).encrypt(_json(values)).hex()
    stored["epoch"] = town.epoch
    return _json(stored)


def reveal_review(item: dict[str, Any], ring: KeyRing | None) -> dict[str, Any]:
    """The item with its values opened, or marked unreadable without the town's keys."""
    opened = {k: v for k, v in item.items() if k != "sealed"}
    keys = ring.get(int(item.get("epoch", 0))) if ring is not None else None
    if keys is None or "sealed" not in item:
        return {**opened, "kept": None, "values": [], "unreadable": True}
    values = json.loads(SealedBox(keys.sealing_key).decrypt(bytes.fromhex(item["sealed"])))
    return {**opened, **values}


def peer_label(storage: Storage, peer: str) -> str:
    """What enrolment recorded about a peer ({"name": …} JSON), else a short id."""
    raw = storage.load(("sync", "peer", peer))
    if raw is not None:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("name"):
            return str(data["name"])
    return peer[:8 + 12] + "…"
