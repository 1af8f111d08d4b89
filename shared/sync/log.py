"""The per-writer blob log: every sealed blob a replica holds, by (town, writer, seq).

Storage keys (through the storage seam; no plaintext — blobs are sealed to their town):

    (town, "log", writer, SEQ)          the sealed blob (SEQ: 20-digit zero-padded)
    (town, "logmeta", writer, SEQ)      {"d": document, "n": size, "id": blob id} (JSON)
    (town, "logconflict", writer, SEQ)  a second, different blob seen for that slot
    ("sync", "towns")                   the towns the log holds blobs of (JSON list)
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
"""

from __future__ import annotations

import bisect
import enum
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from shared.blobs import BlobError, BlobHeader, blob_id, verify_blob
from shared.storage import Storage, StorageKey
from shared.sync import identity

MAX_EXTRAS = 256  # seqs listed above the contiguous point, per writer, in a have
_TOWNS_KEY: StorageKey = ("sync", "towns")
_GENERATION_KEY: StorageKey = ("sync", "generation")
BLOCKS = "blocks"
DIRECTORY = "directory"


def seq_key(seq: int) -> str:
    return f"{seq:020d}"


def document_name(document: str) -> str:
    """ "15307/shard-003" → "shard-003"."""
    return document.split("/", 1)[1] if "/" in document else document


def priority(document: str) -> int:
    """Send order: the 支援措置 document first (a box that missed a block endangers a
    life), then the clerk directory, then the registry shards."""
    name = document_name(document)
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
    DUPLICATE = "duplicate"  # the same blob again: silent no-op
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
    """The blobs a replica holds. `towns` (None: any) limits which towns it accepts;
    `admit` is the writer-admission policy (enrolment), applied after the signature."""

    def __init__(
        self,
        storage: Storage,
        *,
        towns: Iterable[str] | None = None,
        lookup: identity.WriterLookup | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.storage = storage
        self.accepted_towns = None if towns is None else frozenset(towns)
        self._lookup = lookup or identity.lookup()
        self._admit = admit
        self.listeners: list[Listener] = []
        self._seqs: dict[str, dict[str, list[int]]] = {}
        self._refs: dict[tuple[str, str, int], BlobRef] = {}
        self._contiguous: dict[tuple[str, str], int] = {}
        self.conflicts: list[BlobRef] = []
        self._load_index()

    # ------------------------------------------------------------------ index

    def _load_index(self) -> None:
        self._seqs, self._refs, self._contiguous = {}, {}, {}
        self.generation = self.storage.load(_GENERATION_KEY)
        raw = self.storage.load(_TOWNS_KEY)
        for town in [] if raw is None else json.loads(raw):
            self._seqs.setdefault(town, {})
            for key, value in self.storage.load_range((town, "logmeta")):
                meta = json.loads(value)
                self._index(BlobRef(town, key[2], int(key[3]), meta["d"], meta["n"], meta["id"]))

    def _index(self, ref: BlobRef) -> None:
        seqs = self._seqs.setdefault(ref.town, {}).setdefault(ref.writer, [])
        bisect.insort(seqs, ref.seq)
        self._refs[ref.slot] = ref
        key = (ref.town, ref.writer)
        contiguous = self._contiguous.get(key, 0)
        if ref.seq == contiguous + 1:
            position = bisect.bisect_left(seqs, ref.seq)
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
            items = [(ref, self.load(ref)) for ref in fresh]
            for listener in self.listeners:
                listener(items)
        return True

    def verify_all(self) -> list[str]:
        """Every indexed blob is stored, matches its id and verifies; every stored blob is
        indexed. Returns the problems found (the nightly check and the crash tests)."""
        problems = []
        stored: set[tuple[str, str, int]] = set()
        for town in self.towns():
            for key, blob in self.storage.load_range((town, "log")):
                slot = (town, key[2], int(key[3]))
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

    def holds(self, town: str, writer: str, seq: int) -> bool:
        return (town, writer, seq) in self._refs

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
        return 1 + (seqs[-1] if seqs else 0)

    def load(self, ref: BlobRef) -> bytes:
        blob = self.storage.load((ref.town, "log", ref.writer, seq_key(ref.seq)))
        if blob is None:
            raise KeyError(f"blob {ref.slot} indexed but not stored")
        return blob

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
                if any((town, writer, seq) not in self._refs for seq in held.extra):
                    return True
        return False

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
            header = verify_blob(blob, self._lookup)
        except BlobError as exc:
            return None, str(exc)
        if self.accepted_towns is not None and header.town not in self.accepted_towns:
            return None, f"town {header.town} is not held here"
        if not header.document.startswith(header.town + "/"):
            return None, f"document {header.document!r} is not of town {header.town!r}"
        if header.writer_seq < 1:
            return None, "writer sequence numbers start at 1"
        if self._admit is not None and not self._admit(header):
            return None, f"writer {header.writer_id[:20]}… is not admitted"
        return header, ""

    def add_many(self, blobs: Iterable[bytes]) -> list[Received]:
        """Check and store blobs; the new ones land in one transaction. Listeners hear of
        the stored ones after they are durable."""
        self.refresh()  # another process may have written since (narrows the race)
        results: list[Received] = []
        items: list[tuple[StorageKey, bytes]] = []
        fresh: list[tuple[BlobRef, bytes]] = []
        new_towns: set[str] = set()
        pending: dict[tuple[str, str, int], BlobRef] = {}
        for blob in blobs:
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
        if new_towns:
            towns = sorted(set(self._seqs) | new_towns)
            items.append((_TOWNS_KEY, json.dumps(towns).encode()))
        if items:
            generation = secrets.token_bytes(16)
            items.append((_GENERATION_KEY, generation))
            self.storage.save_many(items)
            self.generation = generation
        for ref, _ in fresh:
            self._index(ref)
        if fresh:
            for listener in self.listeners:
                listener(fresh)
        return results

    def add(self, blob: bytes) -> Received:
        return self.add_many([blob])[0]

    def _record_conflict(self, ref: BlobRef, blob: bytes) -> None:
        if any(c.slot == ref.slot and c.blob_id == ref.blob_id for c in self.conflicts):
            return
        self.conflicts.append(ref)
        self.storage.save((ref.town, "logconflict", ref.writer, seq_key(ref.seq)), blob)
