"""A replica: its blob log and, for each town whose keys it holds, the town's documents.

Any replica stores and forwards every blob of the towns it holds, readable or not (a box
relays partner towns that are sealed on it; the hub relays everything). For a town whose
key ring is open, each stored blob is also opened and applied:

- the header is checked against the sealed contents (`shared.sync.content`); a mismatch
  is flagged and the blob is not applied (it stays in the log: it is what was signed);
- a Loro update whose dependencies this replica has not received yet raises
  `CrdtPendingError`; it is kept as *pending* — visible in `pending()` — and retried
  whenever another blob of that document is applied. The missing blobs arrive through
  reconciliation: a writer's blob can only depend on blobs its writer held, which are in
  that writer's log, so per-writer contiguity brings them. Nothing stays silently pending.

Local edits go through `edit`: the registry applies the changes, each touched document's
delta is sealed under the town's *public* key with the next sequence numbers of this
replica's writer id, and stored in one transaction. An edit is acknowledged when `edit`
returns: it is then durable and will reach every replica.

A restart is a new `SyncReplica` over the same storage: the log index is read back and
open towns are rebuilt from their blobs, with a fresh Loro peer id (`RecordDocument`).

Opening a town (`open_town`) is how every reader gets a town's documents — a box's worker
at a clerk's login, the hub's importer, the hub's sync service: the compaction snapshots
first, then every later update, each document's blobs in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.blobs import BlobError, BlobFields, open_blob, seal_blob
from shared.crdt import CrdtError, CrdtPendingError
from shared.crypto import KeyRing, TownPublic
from shared.records import Record
from shared.registry import DEFAULT_SHARDS, Change, TownRegistry
from shared.storage import Storage, StorageKey
from shared.sync import content, identity
from shared.sync.checkpoint import Checkpoint, seal_checkpoint
from shared.sync.errors import ContentError, SyncError
from shared.sync.identity import Identity
from shared.sync.log import Admit, BlobLog, BlobRef, Received, document_name, priority
from shared.sync.notices import Authority

IDENTITY_KEY: StorageKey = ("sync", "identity")


def load_or_create_identity(storage: Storage, key: StorageKey = IDENTITY_KEY) -> Identity:
    """The replica's writer identity, persisted with its log (its sequence numbers
    continue across restarts; a wiped replica gets a new id). A process that writes
    beside another one over the same store uses its own `key`: one writer id, one
    process."""
    seed = storage.load(key)
    if seed is not None:
        return Identity.from_bytes(seed)
    created = Identity.generate()
    storage.save(key, created.to_bytes())
    return created


def seal_documents(
    log: BlobLog,
    writer: Identity,
    public: TownPublic,
    data: Mapping[str, bytes],
    kind: content.Kind = content.Kind.UPDATE,
    extra: Iterable[tuple[StorageKey, bytes]] = (),
) -> list[Received]:
    """Seal Loro bytes per document name as this writer's next blobs (支援措置 first) and
    store them in one transaction (with `extra` storage items). Needs only the town's
    public key: the hub's importer and a sealed box write this way without reading."""
    town = public.town
    seq = log.next_seq(town, writer.writer_id)
    blobs = []
    for name in sorted(data, key=lambda n: (priority(n), n)):
        document = f"{town}/{name}"
        plaintext = content.pack(
            content.Content(town, document, writer.writer_id, seq, kind, data[name])
        )
        fields = BlobFields(document, writer.writer_id, seq)
        blobs.append(seal_blob(plaintext, fields, public, writer.signing_key))
        seq += 1
    return log.add_many(blobs, extra)


# (town, document name, the blob, its contents, the document's version before it)
AppliedHook = Callable[[str, str, BlobRef, content.Content, bytes], None]


@dataclass(frozen=True, slots=True)
class Flag:
    """Something a reader found wrong with a stored blob (kept, not applied)."""

    kind: str  # "header-mismatch" | "undecryptable" | "not-content" | "bad-crdt"
    town: str
    writer: str
    seq: int
    detail: str


class SyncReplica:
    def __init__(
        self,
        storage: Storage,
        writer: Identity,
        *,
        towns: Iterable[str] | Callable[[str], bool] | None = None,
        keyrings: Iterable[KeyRing] = (),
        shards: int = DEFAULT_SHARDS,
        admit: Admit | None = None,
        authority: Authority | str | None = None,
    ) -> None:
        self.writer = writer
        self.shards = shards
        self.log = BlobLog(storage, towns=towns, admit=admit, authority=authority)
        self.log.listeners.append(self._on_stored)
        self.on_applied: AppliedHook | None = None  # told of each blob applied after opening
        self.changes = 0  # blobs applied to open towns' documents (a reader's cue to redo)
        self.registries: dict[str, TownRegistry] = {}
        self.flags: list[Flag] = []
        self._keyrings: dict[str, KeyRing] = {}
        # (town, document) → (writer, seq) → the blob's contents and the document's
        # version when it was first tried (for `on_applied` once it applies)
        self._pending: dict[
            tuple[str, str], dict[tuple[str, int], tuple[BlobRef, content.Content, bytes]]
        ] = {}
        self._writing = False
        self.replayed = 0  # blobs the last `open_town` read from the log
        self._lookup = identity.lookup()
        for ring in keyrings:
            self.open_town(ring)

    # ------------------------------------------------------------------ towns

    def open_town(
        self,
        keyring: KeyRing,
        review_after: Mapping[str, int] | None = None,
        start: Checkpoint | None = None,
    ) -> TownRegistry:
        """Open a town (a clerk's login gave its key ring): apply every blob held. With
        `review_after` ({writer: seq}), the blobs above it are applied last and one by
        one through `on_applied`, like blobs arriving now (the hub's review of
        concurrent edits resumes where it stopped). With `start` (this replica's
        checkpoint, checked against the log by `read_checkpoint`), its snapshots are
        imported and only the blobs above what it covers are read."""
        town = keyring.town
        self._keyrings[town] = keyring
        self.registries[town] = TownRegistry(town, shards=self.shards)
        self._pending = {k: v for k, v in self._pending.items() if k[0] != town}
        self.replayed = 0
        if start is not None:
            registry = self.registries[town]
            for name, data in start.documents.items():
                registry.document(name).import_bytes(data)
            items = [
                (ref, blob)
                for ref in self.log.refs(town)
                if not start.covered(ref.writer, ref.seq)
                and (blob := self.log.try_load(ref)) is not None
            ]
        else:
            items = self.log.load_town(town)
        self.replayed = len(items)
        if review_after is None:
            self._apply(town, items, opening=True)
        else:
            seen = [(r, b) for r, b in items if r.seq <= review_after.get(r.writer, 0)]
            fresh = [(r, b) for r, b in items if r.seq > review_after.get(r.writer, 0)]
            self._apply(town, seen, opening=True)
            self._apply(town, fresh)
        return self.registries[town]

    def checkpoint(self, town: str) -> bytes:
        """This replica's sealed checkpoint of an open town (`shared.sync.checkpoint`):
        every document's snapshot, covering per writer what is applied (not pending, not
        flagged)."""
        covers = self.applied_through(town)
        for flag in self.flags:
            if flag.town == town and flag.writer in covers:
                covers[flag.writer] = min(covers[flag.writer], flag.seq - 1)
        registry = self.registries[town]
        documents = {name: doc.export_snapshot() for name, doc in registry.documents.items()}
        public = self._keyrings[town].public
        return seal_checkpoint(self.log, self.writer, public, covers, documents)

    def close_town(self, town: str) -> None:
        self._keyrings.pop(town, None)
        self.registries.pop(town, None)
        for key in [k for k in self._pending if k[0] == town]:
            del self._pending[key]

    def is_open(self, town: str) -> bool:
        return town in self.registries

    # ------------------------------------------------------------------ edits

    def edit(
        self,
        town: str,
        changes: Sequence[Change],
        message: str = "",
        extra: Iterable[tuple[StorageKey, bytes]] = (),
    ) -> list[BlobRef]:
        """Apply changes locally and store their deltas as this writer's next blobs, with
        `extra` storage items in the same transaction. Returns once durable (the edit is
        acknowledged)."""
        registry = self.registries.get(town)
        if registry is None:
            raise SyncError(f"town {town} is not open on this replica")
        deltas = registry.apply(changes, message)
        self.changes += 1
        return self.publish(town, deltas, extra=extra)

    def publish(
        self,
        town: str,
        data: Mapping[str, bytes],
        kind: content.Kind = content.Kind.UPDATE,
        extra: Iterable[tuple[StorageKey, bytes]] = (),
    ) -> list[BlobRef]:
        """Store Loro bytes already in this replica's documents (an edit's deltas, or a
        compaction's snapshots) as this writer's next blobs."""
        self._writing = True
        try:
            results = seal_documents(
                self.log, self.writer, self._keyrings[town].public, data, kind, extra
            )
        finally:
            self._writing = False
        return [r.ref for r in results if r.ref is not None]

    # ------------------------------------------------------------------ applying

    def _on_stored(self, items: list[tuple[BlobRef, bytes]]) -> None:
        if self._writing:
            return  # our own edits are in the documents already
        by_town: dict[str, list[tuple[BlobRef, bytes]]] = {}
        for ref, blob in items:
            if ref.town in self.registries:
                by_town.setdefault(ref.town, []).append((ref, blob))
        for town, town_items in by_town.items():
            self._apply(town, town_items)

    def _flag(self, kind: str, ref: BlobRef, detail: str) -> None:
        self.flags.append(Flag(kind, ref.town, ref.writer, ref.seq, detail))

    def _open(self, town: str, ref: BlobRef, blob: bytes) -> content.Content | None:
        try:
            header, plaintext = open_blob(blob, self._keyrings[town], self._lookup)
        except BlobError as exc:
            self._flag("undecryptable", ref, str(exc))
            return None
        try:
            record = content.unpack(plaintext)
        except ContentError as exc:
            self._flag("not-content", ref, str(exc))
            return None
        problems = content.mismatches(header, record)
        if problems:
            self._flag("header-mismatch", ref, "; ".join(problems))
            return None
        return record

    def _apply(
        self, town: str, items: Iterable[tuple[BlobRef, bytes]], opening: bool = False
    ) -> None:
        registry = self.registries[town]
        opened = [
            (ref, record)
            for ref, blob in items
            if (record := self._open(town, ref, blob)) is not None
        ]
        # Snapshots first (a compaction's base), then updates in each writer's order:
        # most updates then find their dependencies already there.
        opened.sort(key=lambda item: (item[1].kind != content.Kind.SNAPSHOT, item[0].slot))
        touched: set[str] = set()
        hook = None if opening else self.on_applied
        for ref, record in opened:
            name = document_name(record.document)
            document = registry.document(name)
            before = document.version()
            try:
                document.import_bytes(record.data)
            except CrdtPendingError:
                slot = (ref.writer, ref.seq)
                self._pending.setdefault((town, name), {})[slot] = (ref, record, before)
                continue
            except CrdtError as exc:
                self._flag("bad-crdt", ref, str(exc))
                continue
            touched.add(name)
            self.changes += 1
            if hook is not None:
                hook(town, name, ref, record, before)
        for name in touched:
            self._retry_pending(town, name, hook)

    def _retry_pending(self, town: str, name: str, hook: AppliedHook | None) -> None:
        waiting = self._pending.get((town, name))
        document = self.registries[town].document(name)
        while waiting:
            progress = False
            for slot, (ref, record, before) in list(waiting.items()):
                try:
                    document.import_bytes(record.data)
                except CrdtPendingError:
                    continue
                except CrdtError as exc:
                    self._flag("bad-crdt", ref, str(exc))
                else:
                    self.changes += 1
                    if hook is not None:
                        hook(town, name, ref, record, before)
                del waiting[slot]
                progress = True
            if not progress:
                break
        if not waiting:
            self._pending.pop((town, name), None)

    # ------------------------------------------------------------------ reading

    def pending(self) -> dict[tuple[str, str], list[tuple[str, int]]]:
        """(town, document) → the (writer, seq) of blobs waiting for their dependencies."""
        return {key: sorted(slots) for key, slots in self._pending.items() if slots}

    def applied_through(self, town: str) -> dict[str, int]:
        """Per writer, the seq up to which every blob of the town is in this replica's
        documents (held and not pending): what a compaction snapshot taken now covers."""
        have = self.log.have([town]).get(town, {})
        lowest_pending: dict[str, int] = {}
        for (pending_town, _), slots in self._pending.items():
            if pending_town != town:
                continue
            for writer, seq in slots:
                lowest_pending[writer] = min(seq, lowest_pending.get(writer, seq))
        return {
            writer: min(held.contiguous, lowest_pending.get(writer, held.contiguous + 1) - 1)
            for writer, held in have.items()
        }

    def records(self, town: str, name: str, table: str) -> dict[str, Record]:
        document = self.registries[town].documents.get(name)
        return {} if document is None else document.records(table)

    def version(self, town: str, name: str) -> bytes | None:
        document = self.registries[town].documents.get(name)
        return None if document is None else document.version()
