"""The per-writer blob log: every sealed blob a replica holds, by (town, writer, seq).

Storage keys (through the storage seam; no plaintext — blobs are sealed to their town):

    (town, "log", writer, SEQ)          the sealed blob (SEQ: 20-digit zero-padded)
    (town, "logmeta", writer, SEQ)      {"d": document, "n": size, "id": blob id} (JSON)
    (town, "logconflict", writer, SEQ)  a second, different blob seen for that slot
    ("sync", "town", town)              the log holds blobs of this town (one key per town,
                                        so two processes adding towns never clobber; the
                                        older ("sync", "towns") JSON list is still read)
    ("sync", "floor", town)             the compaction floor applied: {writer: seq} (JSON)
    ("sync", "notice", town, kind)      the newest notice of that kind (`notices`)
    ("sync", "as-of-held", town)        the newest as-of notice whose blobs are all held
    ("sync", "generation")              a fresh token written with every change, so a
                                        process sharing the store (the hub's importer,
                                        a town worker on a box) can tell it must reload

A blob and its meta row land in one `save_many`, so a crash leaves either both or
neither. The meta rows let a replica rebuild its index at start-up without reading a
single blob.

A replica's *have* for a town is, per writer, the highest sequence number up to which it
holds every blob ("contiguous"), plus a bounded list of the numbers it holds above that
("extra": blobs that arrived out of order, e.g. 支援措置 blobs sent ahead of the rest).
Reconciliation sends what the other side's have does not cover; re-delivery of a blob
already held is a silent no-op; a *different* blob for a slot already held is refused and
kept as evidence (`Outcome.CONFLICT`) — a writer that signs two blobs for one sequence
number is misbehaving, and the first one stays.

Every blob is structure- and signature-checked before it is stored (`verify_blob` with
self-certifying writer ids), so a relay that can read nothing still refuses forgeries.

**Compaction floors.** When the log holds the authority's `base` notice for a town
(`shared.sync.notices`) and every snapshot blob it names, the base's `covers` become the
town's *floor*: every slot (writer, seq ≤ floor[writer]) counts as held — it is inside
the snapshots — and its blob, if stored, is removed. The floor is saved before anything
is removed, and rows at or below it are removed again at the next start, so a crash in
the middle of a trim only leaves work for later. A blob offered for a slot under the
floor is a silent duplicate; a writer's next sequence number continues above its floor.
"""

from __future__ import annotations

import bisect
import enum
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from shared.blobs import BlobError, BlobHeader, blob_id, read_header, verify_blob
from shared.storage import Storage, StorageKey
from shared.sync import identity
from shared.sync.notices import AS_OF, BASE, Authority, Notice, NoticeBook, fixed

MAX_EXTRAS = 256  # seqs listed above the contiguous point, per writer, in a have
_VERIFIED: dict[bytes, BlobHeader] = {}  # blob id → header, for self-certifying writers
_VERIFIED_MAX = 8192
_LEGACY_TOWNS_KEY: StorageKey = ("sync", "towns")
_GENERATION_KEY: StorageKey = ("sync", "generation")
BLOCKS = "blocks"
DIRECTORY = "directory"


def seq_key(seq: int) -> str:
    return f"{seq:020d}"


def _town_key(town: str) -> StorageKey:
    return ("sync", "town", town)


def _floor_key(town: str) -> StorageKey:
    return ("sync", "floor", town)


def document_name(document: str) -> str:
    """ "15307/shard-003" → "shard-003"."""
    return document.split("/", 1)[1] if "/" in document else document


def priority(document: str) -> int:
    """Send order: the 支援措置 document first (a box that missed a block endangers a
    life), then the clerk directory, then the registry shards."""
    name = document_name(document)
    if name.startswith("partner-"):  # the partner copy of a document (see cloud.partner)
        name = name[len("partner-") :]
    if name == BLOCKS:
        return 0
    if name == DIRECTORY:
        return 1
    return 2


@dataclass(frozen=True, slots=True)
class WriterHave:
    contiguous: int
    extra: tuple[int, ...] = ()

    def covers(self, seq: int) -> bool:
        return seq <= self.contiguous or seq in self.extra


Have = Mapping[str, Mapping[str, WriterHave]]  # town -> writer -> what is held


@dataclass(frozen=True, slots=True)
class BlobRef:
    town: str
    writer: str
    seq: int
    document: str
    size: int
    blob_id: str  # hex

    @property
    def slot(self) -> tuple[str, str, int]:
        return (self.town, self.writer, self.seq)


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # the same blob again (or one under the floor): silent no-op
    CONFLICT = "conflict"  # a different blob for a slot already held: first one kept
    REFUSED = "refused"  # malformed, forged, not admitted, or a town this log does not hold


@dataclass(frozen=True, slots=True)
class Received:
    outcome: Outcome
    ref: BlobRef | None
    reason: str = ""


Admit = Callable[[BlobHeader], bool]
Listener = Callable[[list[tuple[BlobRef, bytes]]], None]


class BlobLog:
    """The blobs a replica holds. `towns` (None: any) limits which towns it accepts — a
    collection, or a predicate asked each time (placement that changes with the
    federation's configuration); `admit` is the writer-admission policy (enrolment),
    applied after the signature; `authority` names the writer whose notices (as-of,
    compaction bases) it trusts."""

    def __init__(
        self,
        storage: Storage,
        *,
        towns: Iterable[str] | Callable[[str], bool] | None = None,
        lookup: identity.WriterLookup | None = None,
        admit: Admit | None = None,
        authority: Authority | str | None = None,
    ) -> None:
        self.storage = storage
        self._town_filter: Callable[[str], bool] | None = None
        if callable(towns):
            self._town_filter, towns = towns, None
        self.accepted_towns = None if towns is None else frozenset(towns)
        self._lookup = lookup or identity.lookup()
        self._self_certifying = lookup is None
        self._admit = admit
        self.notices = NoticeBook(
            storage, authority if callable(authority) else fixed(authority)
        )
        self.listeners: list[Listener] = []
        self._seqs: dict[str, dict[str, list[int]]] = {}
        self._refs: dict[tuple[str, str, int], BlobRef] = {}
        self._contiguous: dict[tuple[str, str], int] = {}
        self._floors: dict[str, dict[str, int]] = {}
        self.conflicts: list[BlobRef] = []
        self.trimmed = 0  # blobs removed under a floor by this process
        self._load_index()

    # ------------------------------------------------------------------ index

    def _stored_towns(self) -> set[str]:
        towns = {key[2] for key, _ in self.storage.load_range(("sync", "town"))}
        legacy = self.storage.load(_LEGACY_TOWNS_KEY)
        if legacy is not None:
            towns |= set(json.loads(legacy))
        return towns

    def _load_index(self) -> None:
        self._seqs, self._refs, self._contiguous, self._floors = {}, {}, {}, {}
        self.generation = self.storage.load(_GENERATION_KEY)
        leftovers: list[StorageKey] = []
        for town in sorted(self._stored_towns()):
            self._seqs.setdefault(town, {})
            raw = self.storage.load(_floor_key(town))
            floor: dict[str, int] = {} if raw is None else json.loads(raw)
            self._floors[town] = floor
            for writer, seq in floor.items():
                self._seqs[town].setdefault(writer, [])
                self._contiguous[(town, writer)] = seq
            for key, value in self.storage.load_range((town, "logmeta")):
                writer, seq = key[2], int(key[3])
                if seq <= floor.get(writer, 0):  # a trim interrupted by a crash
                    leftovers.append(key)
                    continue
                meta = json.loads(value)
                self._index(BlobRef(town, writer, seq, meta["d"], meta["n"], meta["id"]))
        for key in leftovers:
            self._remove_slot(key[0], key[2], int(key[3]))
        for town in self.towns():
            self._check_base(town)

    def _index(self, ref: BlobRef) -> None:
        seqs = self._seqs.setdefault(ref.town, {}).setdefault(ref.writer, [])
        bisect.insort(seqs, ref.seq)
        self._refs[ref.slot] = ref
        self._extend(ref.town, ref.writer)

    def _extend(self, town: str, writer: str) -> None:
        seqs = self._seqs.get(town, {}).get(writer, [])
        key = (town, writer)
        contiguous = self._contiguous.get(key, 0)
        position = bisect.bisect_right(seqs, contiguous)
        while position < len(seqs) and seqs[position] == contiguous + 1:
            contiguous += 1
            position += 1
        self._contiguous[key] = contiguous

    def refresh(self) -> bool:
        """Reload the index if another process changed the store; True if it did. The
        blobs it learns of this way are reported to listeners like received ones."""
        current = self.storage.load(_GENERATION_KEY)
        if current == self.generation:
            return False
        known = set(self._refs)
        self._load_index()
        fresh = [r for slot, r in sorted(self._refs.items()) if slot not in known]
        if fresh:
            items = [(ref, blob) for ref in fresh if (blob := self.try_load(ref)) is not None]
            for listener in self.listeners:
                listener(items)
        return True

    def verify_all(self) -> list[str]:
        """Every indexed blob is stored, matches its id and verifies; every stored blob is
        indexed (or under the floor, waiting to be removed). Returns the problems found
        (the nightly check and the crash tests)."""
        problems = []
        stored: set[tuple[str, str, int]] = set()
        for town in self.towns():
            for key, blob in self.storage.load_range((town, "log")):
                slot = (town, key[2], int(key[3]))
                if slot[2] <= self.floor(town).get(slot[1], 0):
                    continue
                stored.add(slot)
                ref = self._refs.get(slot)
                if ref is None:
                    problems.append(f"{slot}: stored but not indexed")
                    continue
                if blob_id(blob).hex() != ref.blob_id:
                    problems.append(f"{slot}: content does not match its id")
                header, reason = self.check(blob)
                if header is None:
                    problems.append(f"{slot}: {reason}")
                elif (header.town, header.writer_id, header.writer_seq) != slot:
                    problems.append(f"{slot}: stored under the wrong slot")
        problems.extend(f"{slot}: indexed but not stored" for slot in set(self._refs) - stored)
        return problems

    # ------------------------------------------------------------------ reading

    def towns(self) -> list[str]:
        return sorted(self._seqs)

    def floor(self, town: str) -> dict[str, int]:
        """The town's compaction floor: every slot at or below it counts as held."""
        return dict(self._floors.get(town, {}))

    def holds(self, town: str, writer: str, seq: int) -> bool:
        """Held: stored, or covered by the floor (inside the compaction's snapshots)."""
        return (town, writer, seq) in self._refs or seq <= self._floors.get(town, {}).get(
            writer, 0
        )

    def ref(self, town: str, writer: str, seq: int) -> BlobRef | None:
        return self._refs.get((town, writer, seq))

    def refs(self, town: str) -> Iterator[BlobRef]:
        for writer, seqs in sorted(self._seqs.get(town, {}).items()):
            for seq in seqs:
                yield self._refs[(town, writer, seq)]

    def count(self, town: str | None = None) -> int:
        if town is None:
            return len(self._refs)
        return sum(len(s) for s in self._seqs.get(town, {}).values())

    def next_seq(self, town: str, writer: str) -> int:
        seqs = self._seqs.get(town, {}).get(writer)
        last = seqs[-1] if seqs else 0
        return 1 + max(last, self._floors.get(town, {}).get(writer, 0))

    def load(self, ref: BlobRef) -> bytes:
        blob = self.storage.load((ref.town, "log", ref.writer, seq_key(ref.seq)))
        if blob is None:
            raise KeyError(f"blob {ref.slot} indexed but not stored")
        return blob

    def try_load(self, ref: BlobRef) -> bytes | None:
        """A blob, or None if another process trimmed it meanwhile (it is then inside a
        snapshot this replica holds)."""
        return self.storage.load((ref.town, "log", ref.writer, seq_key(ref.seq)))

    def load_town(self, town: str) -> list[tuple[BlobRef, bytes]]:
        """Every stored blob of a town (what opening the town reads), skipping any that
        another process trimmed since the index was read."""
        return [(ref, blob) for ref in self.refs(town) if (blob := self.try_load(ref))]

    def have(self, towns: Iterable[str]) -> dict[str, dict[str, WriterHave]]:
        result: dict[str, dict[str, WriterHave]] = {}
        for town in towns:
            entry: dict[str, WriterHave] = {}
            for writer, seqs in self._seqs.get(town, {}).items():
                contiguous = self._contiguous.get((town, writer), 0)
                start = bisect.bisect_right(seqs, contiguous)
                entry[writer] = WriterHave(contiguous, tuple(seqs[start : start + MAX_EXTRAS]))
            result[town] = entry
        return result

    def lacks(self, their: Have, towns: Iterable[str]) -> bool:
        """Whether their have claims any blob of `towns` this log does not hold."""
        for town in towns:
            for writer, held in their.get(town, {}).items():
                seqs = self._seqs.get(town, {}).get(writer, [])
                mine = self._contiguous.get((town, writer), 0)
                if held.contiguous > mine:
                    present = bisect.bisect_right(seqs, held.contiguous) - bisect.bisect_right(
                        seqs, mine
                    )
                    if present < held.contiguous - mine:
                        return True
                if any(
                    seq > mine and (town, writer, seq) not in self._refs for seq in held.extra
                ):
                    return True
        return False

    def count_missing(self, their: Have, town: str) -> int:
        """How many blobs of the town this log holds that their have does not cover."""
        missing = 0
        theirs = their.get(town, {})
        for writer, seqs in self._seqs.get(town, {}).items():
            held = theirs.get(writer, WriterHave(0))
            start = bisect.bisect_right(seqs, held.contiguous)
            extra = set(held.extra)
            missing += sum(1 for seq in seqs[start:] if seq not in extra)
        return missing

    def missing_for(
        self,
        their: Have,
        towns: Iterable[str],
        *,
        max_blobs: int,
        max_bytes: int,
        exclude: frozenset[tuple[str, str, int]] | set[tuple[str, str, int]] = frozenset(),
    ) -> tuple[list[BlobRef], bool]:
        """What the peer lacks of `towns`, 支援措置 first, in a batch of at most
        `max_blobs` blobs and `max_bytes` bytes (at least one blob, however large);
        the flag says whether more remain."""
        candidates: list[BlobRef] = []
        for town in towns:
            theirs = their.get(town, {})
            for writer, seqs in self._seqs.get(town, {}).items():
                held = theirs.get(writer, WriterHave(0))
                start = bisect.bisect_right(seqs, held.contiguous)
                extra = set(held.extra)
                for seq in seqs[start:]:
                    if seq not in extra and (town, writer, seq) not in exclude:
                        candidates.append(self._refs[(town, writer, seq)])
        candidates.sort(key=lambda r: (priority(r.document), r.town, r.writer, r.seq))
        batch: list[BlobRef] = []
        size = 0
        for ref in candidates:
            if len(batch) >= max_blobs or (batch and size + ref.size > max_bytes):
                break
            batch.append(ref)
            size += ref.size
        return batch, len(batch) < len(candidates)

    # ------------------------------------------------------------------ writing

    def check(self, blob: bytes) -> tuple[BlobHeader | None, str]:
        """Structure, signature (self-certifying writer id) and admission; no key needed."""
        try:
            header = self._verified(blob)
        except BlobError as exc:
            return None, str(exc)
        if not self.accepts(header.town):
            return None, f"town {header.town} is not held here"
        if not header.document.startswith(header.town + "/"):
            return None, f"document {header.document!r} is not of town {header.town!r}"
        if header.writer_seq < 1:
            return None, "writer sequence numbers start at 1"
        if self._admit is not None and not self._admit(header):
            return None, f"writer {header.writer_id[:20]}… is not admitted"
        return header, ""

    def add_many(
        self,
        blobs: Iterable[bytes],
        extra: Iterable[tuple[StorageKey, bytes]] = (),
    ) -> list[Received]:
        """Check and store blobs; the new ones land in one transaction, with `extra`
        storage items if given (an import's state beside its deltas). Listeners hear of
        the stored ones after they are durable."""
        self.refresh()  # another process may have written since (narrows the race)
        results: list[Received] = []
        items: list[tuple[StorageKey, bytes]] = list(extra)
        fresh: list[tuple[BlobRef, bytes]] = []
        new_towns: set[str] = set()
        pending: dict[tuple[str, str, int], BlobRef] = {}
        for blob in blobs:
            known = self._known(blob)
            if known is not None:  # the very bytes already stored: verified back then
                results.append(known)
                continue
            header, reason = self.check(blob)
            if header is None:
                results.append(Received(Outcome.REFUSED, None, reason))
                continue
            ref = BlobRef(
                header.town,
                header.writer_id,
                header.writer_seq,
                header.document,
                len(blob),
                blob_id(blob).hex(),
            )
            if ref.seq <= self._floors.get(ref.town, {}).get(ref.writer, 0):
                results.append(Received(Outcome.DUPLICATE, None, "under the floor"))
                continue
            held = self._refs.get(ref.slot) or pending.get(ref.slot)
            if held is not None:
                if held.blob_id == ref.blob_id:
                    results.append(Received(Outcome.DUPLICATE, held))
                else:
                    self._record_conflict(ref, blob)
                    results.append(Received(Outcome.CONFLICT, held, "a different blob holds slot"))
                continue
            seq = seq_key(ref.seq)
            meta = json.dumps({"d": ref.document, "n": ref.size, "id": ref.blob_id}).encode()
            items.append(((ref.town, "log", ref.writer, seq), blob))
            items.append(((ref.town, "logmeta", ref.writer, seq), meta))
            pending[ref.slot] = ref
            fresh.append((ref, blob))
            if ref.town not in self._seqs:
                new_towns.add(ref.town)
            results.append(Received(Outcome.STORED, ref))
        items.extend((_town_key(town), b"1") for town in sorted(new_towns))
        if items:
            generation = secrets.token_bytes(16)
            items.append((_GENERATION_KEY, generation))
            self.storage.save_many(items)
            self.generation = generation
        for town in new_towns:
            self._seqs.setdefault(town, {})
        for ref, _ in fresh:
            self._index(ref)
        if fresh:
            for listener in self.listeners:
                listener(fresh)
            for town in sorted({ref.town for ref, _ in fresh}):
                self._check_base(town)
                self._check_as_of(town)
        return results

    def _verified(self, blob: bytes) -> BlobHeader:
        """`verify_blob`, remembered by blob id for self-certifying writers: the same bytes
        verify the same way for every replica in the process (a relay and a box sharing
        one, the tests' many replicas)."""
        if not self._self_certifying:
            return verify_blob(blob, self._lookup)
        key = blob_id(blob)
        header = _VERIFIED.get(key)
        if header is None:
            header = verify_blob(blob, self._lookup)
            _VERIFIED[key] = header
            if len(_VERIFIED) > _VERIFIED_MAX:
                _VERIFIED.pop(next(iter(_VERIFIED)))
        return header

    def _known(self, blob: bytes) -> Received | None:
        """A re-delivery of a blob held (or covered by the floor), recognised from its
        header and id alone — re-delivery is common and must stay cheap."""
        try:
            header = read_header(blob)
        except BlobError:
            return None
        slot = (header.town, header.writer_id, header.writer_seq)
        if header.writer_seq <= self._floors.get(header.town, {}).get(header.writer_id, 0):
            return None  # verified below before it counts as a duplicate
        held = self._refs.get(slot)
        if held is not None and held.blob_id == blob_id(blob).hex():
            return Received(Outcome.DUPLICATE, held)
        return None

    def add(self, blob: bytes) -> Received:
        return self.add_many([blob])[0]

    def _record_conflict(self, ref: BlobRef, blob: bytes) -> None:
        if any(c.slot == ref.slot and c.blob_id == ref.blob_id for c in self.conflicts):
            return
        self.conflicts.append(ref)
        self.storage.save((ref.town, "logconflict", ref.writer, seq_key(ref.seq)), blob)

    # ------------------------------------------------------------------ notices, floors

    def accept_notices(self, notices: Iterable[Notice], towns: Iterable[str]) -> list[Notice]:
        """Keep the peer's newer notices of the session's towns; a base whose snapshots
        are all held raises the floor at once."""
        towns = tuple(towns)
        kept = self.notices.offer(notices, [t for t in towns if self.accepts(t)])
        for town in sorted({n.town for n in kept if n.kind == BASE}):
            self._seqs.setdefault(town, {})
            self._check_base(town)
        for town in sorted({n.town for n in kept}):
            self._check_as_of(town)
        return kept

    def as_of_held(self, town: str) -> Notice | None:
        """The newest as-of statement this replica holds every blob of: its data is as
        fresh as that statement's `as_of` (plus edits made at the boxes since)."""
        raw = self.storage.load(("sync", "as-of-held", town))
        return None if raw is None else Notice.from_json(json.loads(raw))

    def _check_as_of(self, town: str) -> None:
        newest = self.notices.get(town, AS_OF)
        if newest is None:
            return
        held = self.as_of_held(town)
        if held is not None and held.n >= newest.n:
            return
        if all(self._contiguous.get((town, w), 0) >= s for w, s in newest.covers.items()):
            self.storage.save(("sync", "as-of-held", town), json.dumps(newest.to_json()).encode())

    def accepts(self, town: str) -> bool:
        """Whether this log holds (or would hold) the town's blobs."""
        if self._town_filter is not None and not self._town_filter(town):
            return False
        return self.accepted_towns is None or town in self.accepted_towns

    def _check_base(self, town: str) -> None:
        base = self.notices.get(town, BASE)
        if base is None or base.snapshots is None:
            return
        first, last = base.snapshots
        floor = self._floors.get(town, {})
        if all(floor.get(w, 0) >= s for w, s in base.covers.items()):
            return  # nothing new
        if not all(self.holds(town, base.by, seq) for seq in range(first, last + 1)):
            return  # not until the snapshots are here
        self.apply_floor(town, base.covers, keep=(base.by, first, last))

    def apply_floor(
        self, town: str, covers: Mapping[str, int], keep: tuple[str, int, int] | None = None
    ) -> int:
        """Raise the town's floor to `covers` (never lowers it) and remove the blobs now
        under it, except the slots `keep` names (the base's own snapshots). Returns how
        many blobs were removed."""
        floor = dict(self._floors.get(town, {}))
        for writer, seq in covers.items():
            if keep is not None and writer == keep[0]:
                seq = min(seq, keep[1] - 1)
            floor[writer] = max(floor.get(writer, 0), seq)
        if floor == self._floors.get(town, {}):
            return 0
        generation = secrets.token_bytes(16)
        self.storage.save_many(
            [
                (_floor_key(town), json.dumps(floor, sort_keys=True).encode()),
                (_town_key(town), b"1"),
                (_GENERATION_KEY, generation),
            ]
        )
        self.generation = generation
        self._floors[town] = floor
        removed = 0
        writers = self._seqs.setdefault(town, {})
        for writer, seq in floor.items():
            seqs = writers.setdefault(writer, [])
            cut = bisect.bisect_right(seqs, seq)
            for old in seqs[:cut]:
                self._remove_slot(town, writer, old)
                self._refs.pop((town, writer, old), None)
                removed += 1
            del seqs[:cut]
            key = (town, writer)
            self._contiguous[key] = max(self._contiguous.get(key, 0), seq)
            self._extend(town, writer)
        self.trimmed += removed
        return removed

    def _remove_slot(self, town: str, writer: str, seq: int) -> None:
        # The blob first, then its row: a crash between leaves a row under the floor,
        # which the next start removes (never a blob without a row).
        self.storage.remove((town, "log", writer, seq_key(seq)))
        self.storage.remove((town, "logmeta", writer, seq_key(seq)))
