"""Compaction: snapshots under the town's current key, history trimmed only below what
every replica seen in the last N days acknowledged, and a replica returning after the
trim — with edits of its own made meanwhile — recovers: nothing pending, same documents.
"""

from __future__ import annotations

from cloud.custody import Custody
from cloud.replica import HubReplica
from shared import crypto
from shared.blobs import read_header
from shared.registry import Upsert
from shared.storage import MemoryStorage
from shared.sync.identity import Identity
from shared.sync.messages import decode, encode
from shared.sync.protocol import Initiator, Responder, State
from shared.sync.replica import SyncReplica

TOWN = "15307"
DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def household(record_id: str, **fields: object) -> Upsert:
    return Upsert("households", record_id, dict(fields), dict(fields))


def sync(box: SyncReplica, hub: HubReplica) -> Initiator:
    """One acknowledging session box → hub, through the wire codec."""
    initiator = Initiator(box.log, box.writer, (TOWN,), ack=True)
    responder = Responder(hub.log, hub.peer_id, observe=hub.observe)
    message = initiator.start()
    while message is not None:
        answer = decode(encode(responder.handle(decode(encode(message)), 0.0)))
        message = initiator.receive(answer)
    assert initiator.state is State.DONE, initiator.error
    return initiator


def hub_edit(hub: HubReplica, *changes: Upsert) -> None:
    hub.publish(TOWN, hub.registry(TOWN).apply(changes))


def box(custody: Custody, hub: HubReplica, *, keyed: bool = True) -> SyncReplica:
    rings = [custody.ring(TOWN)] if keyed else []
    return SyncReplica(
        MemoryStorage(), Identity.generate(), keyrings=rings, authority=hub.peer_id
    )


def records(replica: SyncReplica | HubReplica) -> dict[str, object]:
    registry = replica.registry(TOWN) if isinstance(replica, HubReplica) else (
        replica.registries[TOWN]
    )
    return {
        name: dict(doc.records("households")) for name, doc in sorted(registry.documents.items())
    }


def test_trim_waits_for_recent_replicas_and_a_returning_one_recovers() -> None:
    clock = Clock()
    custody = Custody.create()
    hub = HubReplica(MemoryStorage(), custody, clock=clock, shards=2)
    for i in range(12):
        hub_edit(hub, household(f"h{i}", n=i))
    a, b, c = box(custody, hub), box(custody, hub), box(custody, hub)
    for replica in (a, b, c):
        sync(replica, hub)
    # C goes offline for good and edits on its own; A and B carry on.
    c.edit(TOWN, [household("h1", n=100, by="c"), household("c-only", by="c")])
    for day in range(40):
        clock.now += DAY
        hub_edit(hub, household(f"d{day}", n=day))
        a.edit(TOWN, [household(f"a{day}", by="a")])
        sync(a, hub)
        sync(b, hub)
    a.edit(TOWN, [household("late", by="a")])
    sync(a, hub)  # B has not acknowledged this one
    held_before = hub.log.count(TOWN)

    result = hub.compact(TOWN, window_days=30)

    assert result.acknowledged_by == 2  # A and B; C was last seen 40 days ago
    assert result.removed > 0 and hub.log.count(TOWN) < held_before
    writer = a.writer.writer_id
    # Never above what B acknowledged: A's last edit, which B has not, stays in the log.
    assert result.covers[writer] == b.log.have([TOWN])[TOWN][writer].contiguous
    assert hub.log.ref(TOWN, writer, result.covers[writer] + 1) is not None
    # Snapshots under the town's current key.
    first, last = result.snapshots
    epoch = custody.ring(TOWN).current.epoch
    for seq in range(first, last + 1):
        ref = hub.log.ref(TOWN, hub.peer_id, seq)
        assert ref is not None and read_header(hub.log.load(ref)).epoch == epoch

    # Recent replicas take the base and trim their own logs; nothing of theirs is lost.
    for replica in (a, b):
        before = records(replica)
        sync(replica, hub)
        assert replica.log.floor(TOWN) == hub.log.floor(TOWN)
        assert replica.log.count(TOWN) < held_before
        assert records(replica) == before or replica is b  # B also got "late"
        assert replica.pending() == {} and replica.flags == []

    # C returns after the trim: it receives the snapshots, sends its offline edits, and
    # ends where everyone is — nothing pending, nothing silently lost.
    sync(c, hub)
    sync(c, hub)
    sync(a, hub)
    assert c.pending() == {} and c.flags == [] and hub.replica.pending() == {}
    assert c.log.have([TOWN]) == hub.log.have([TOWN]) == a.log.have([TOWN])
    assert records(c) == records(hub) == records(a)
    assert any(r.get("by") == "c" for doc in records(hub).values() for r in doc.values())  # type: ignore[attr-defined]
    # A restart opens the town from the compacted log: snapshots, then what came after.
    restarted = SyncReplica(
        c.log.storage, c.writer, keyrings=[custody.ring(TOWN)], authority=hub.peer_id
    )
    assert records(restarted) == records(hub) and restarted.pending() == {}


def test_a_relay_without_keys_trims_under_the_base_too() -> None:
    clock = Clock()
    custody = Custody.create()
    hub = HubReplica(MemoryStorage(), custody, clock=clock, shards=2)
    for i in range(5):
        hub_edit(hub, household(f"h{i}", n=i))
    relay = box(custody, hub, keyed=False)
    sync(relay, hub)
    hub.compact(TOWN)
    sync(relay, hub)
    assert relay.log.floor(TOWN) == hub.log.floor(TOWN) != {}
    assert relay.log.have([TOWN]) == hub.log.have([TOWN])
    assert relay.log.verify_all() == []


def test_after_a_key_rotation_compaction_seals_under_the_new_epoch() -> None:
    custody = Custody.create()
    hub = HubReplica(MemoryStorage(), custody, shards=2)
    hub_edit(hub, household("h1", n=1))
    ring = custody.ring(TOWN)
    ring.add(crypto.rotate(ring.current))
    assert hub.compaction_due(TOWN)
    result = hub.compact(TOWN)
    assert result.epoch == 2
    epochs = {read_header(hub.log.load(r)).epoch for r in hub.log.refs(TOWN)}
    assert epochs == {2}  # nobody else holds the town: everything below is trimmed
    assert not hub.compaction_due(TOWN)
