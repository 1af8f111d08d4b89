"""A reader's sealed checkpoint (`shared.sync.checkpoint`): the next opening imports it
plus only the later blobs, with the same state as replaying the whole log; a checkpoint
that is tampered, foreign, another town's or stale is ignored, never trusted."""

from __future__ import annotations

import pytest

from edge.replica import TownReader
from shared.crypto import KeyRing, TownKeys
from shared.registry import Change, TownRegistry, Upsert
from shared.storage import MemoryStorage, Storage
from shared.sync.checkpoint import checkpoint_key, seal_checkpoint
from shared.sync.identity import Identity
from shared.sync.log import BlobLog
from shared.sync.replica import SyncReplica

TOWN = "15307"
SHARDS = 2
KEYS = TownKeys.generate(TOWN)
RING = KeyRing(TOWN, [KEYS])
TABLES = ("support_blocks", "clerks", "households")


def _change(table: str, record: int, value: int, by: str) -> Change:
    full = {"value": value, "by": by}
    return Upsert(table, f"r{record}", full, full)


class Writer:
    """Another replica of the town (the hub, or another box) editing on its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.replica = SyncReplica(MemoryStorage(), Identity.generate(), shards=SHARDS)
        self.replica.open_town(RING)

    def edit(self, rounds: int, offset: int = 0) -> None:
        for n in range(rounds):
            table = TABLES[n % len(TABLES)]
            self.replica.edit(TOWN, [_change(table, n % 7, offset + n, self.name)])

    def take(self, other: Writer) -> None:
        """Receive the other writer's blobs (its edits then build on them)."""
        self.replica.log.add_many(blob for _, blob in other.replica.log.load_town(TOWN))

    def give(self, box: Storage) -> None:
        BlobLog(box).add_many(blob for _, blob in self.replica.log.load_town(TOWN))


def _same(a: TownRegistry, b: TownRegistry) -> None:
    assert sorted(a.documents) == sorted(b.documents)
    for name, doc in a.documents.items():
        other = b.documents[name]
        for table in TABLES:
            assert doc.records(table) == other.records(table), (name, table)
        assert doc.includes(other.version()) and other.includes(doc.version()), name


def _replayed(box: Storage) -> TownRegistry:
    """The town from the whole log, no checkpoint."""
    fresh = SyncReplica(box, Identity.generate(), shards=SHARDS)
    return fresh.open_town(RING)


@pytest.fixture()
def box() -> MemoryStorage:
    hub, other = Writer("hub"), Writer("other")
    hub.edit(30)
    other.take(hub)
    other.edit(12, offset=100)
    storage = MemoryStorage()
    hub.give(storage)
    other.give(storage)
    return storage


def _checkpointed(box: Storage) -> TownReader:
    reader = TownReader(box, TOWN, SHARDS)
    reader.open(RING)
    assert reader.sync.replayed == BlobLog(box).count(TOWN)
    reader.save_checkpoint()
    return reader


def test_opening_from_the_checkpoint_equals_replaying_the_log(box: MemoryStorage) -> None:
    _checkpointed(box)
    reader = TownReader(box, TOWN, SHARDS)
    registry = reader.open(RING)
    assert reader.sync.replayed == 0  # nothing read from the log but the checkpoint
    _same(registry, _replayed(box))


def test_blobs_after_the_checkpoint_are_applied_on_top(box: MemoryStorage) -> None:
    _checkpointed(box)
    # New edits arrive after the checkpoint: the hub's, and a box's concurrent ones made
    # on an older state (it had not seen the hub's later edits).
    late = Writer("late")
    late.edit(5, offset=500)  # never synced with anyone: concurrent with everything
    hub = Writer("hub2")
    hub.replica.log.add_many(blob for _, blob in BlobLog(box).load_town(TOWN))
    hub.edit(9, offset=900)
    hub.give(box)
    late.give(box)
    reader = TownReader(box, TOWN, SHARDS)
    registry = reader.open(RING)
    assert 0 < reader.sync.replayed < BlobLog(box).count(TOWN)
    _same(registry, _replayed(box))
    assert registry.document("directory").records("clerks")  # not trivially empty


def test_the_checkpoint_is_sealed(box: MemoryStorage) -> None:
    _checkpointed(box)
    stored = box.load(checkpoint_key(TOWN))
    assert stored is not None
    assert b"hub" not in stored and b"households" not in stored


def _reopened(box: Storage) -> TownReader:
    reader = TownReader(box, TOWN, SHARDS)
    reader.open(RING)
    return reader


def test_a_tampered_checkpoint_is_ignored(box: MemoryStorage) -> None:
    _checkpointed(box)
    stored = box.load(checkpoint_key(TOWN))
    assert stored is not None
    for position in (10, len(stored) // 2, len(stored) - 3):
        flipped = bytearray(stored)
        flipped[position] ^= 0x01
        box.save(checkpoint_key(TOWN), bytes(flipped))
        reader = _reopened(box)
        assert reader.sync.replayed == BlobLog(box).count(TOWN)  # the whole log instead
        _same(reader.sync.registries[TOWN], _replayed(box))


def test_a_checkpoint_of_another_writer_is_ignored(box: MemoryStorage) -> None:
    """Sealed to the right town with a valid signature, but not this reader's: a forged
    state (here, an edit that is in no blob) must not get in."""
    reader = _checkpointed(box)
    forger = Writer("forger")
    forger.edit(3, offset=7000)
    documents = {
        n: d.export_snapshot() for n, d in forger.replica.registries[TOWN].documents.items()
    }
    covers = reader.sync.applied_through(TOWN)
    forged = seal_checkpoint(BlobLog(box), forger.replica.writer, RING.public, covers, documents)
    box.save(checkpoint_key(TOWN), forged)
    reopened = _reopened(box)
    assert reopened.sync.replayed == BlobLog(box).count(TOWN)
    _same(reopened.sync.registries[TOWN], _replayed(box))


def test_a_checkpoint_of_another_town_is_ignored(box: MemoryStorage) -> None:
    reader = _checkpointed(box)
    other = KeyRing("15405", [TownKeys.generate("15405")])
    sealed = seal_checkpoint(BlobLog(box), reader.writer, other.public, {}, {})
    box.save(checkpoint_key(TOWN), sealed)
    assert _reopened(box).sync.replayed == BlobLog(box).count(TOWN)


def test_a_stale_checkpoint_is_ignored_when_the_log_changed_below_it(
    box: MemoryStorage,
) -> None:
    _checkpointed(box)
    # A compaction's floor trimmed blobs the checkpoint covers: it describes a log that
    # is not this one any more, and the town is replayed from what the log holds.
    writer = next(iter(BlobLog(box).refs(TOWN))).writer
    assert BlobLog(box).apply_floor(TOWN, {writer: 3}) == 3
    assert box.load(checkpoint_key(TOWN)) is not None
    assert _reopened(box).sync.replayed == BlobLog(box).count(TOWN)


def test_breaking_the_staleness_check_lets_a_stale_checkpoint_in(
    box: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest is what catches it: with the check defeated, the same case goes wrong."""
    from shared.sync import checkpoint

    monkeypatch.setattr(checkpoint, "log_digest", lambda *_: "same")
    _checkpointed(box)
    writer = next(iter(BlobLog(box).refs(TOWN))).writer
    BlobLog(box).apply_floor(TOWN, {writer: 3})
    assert _reopened(box).sync.replayed != BlobLog(box).count(TOWN)
