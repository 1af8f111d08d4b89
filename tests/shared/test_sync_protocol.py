"""The sync protocol piece by piece: the blob log, reconciliation, nonces, versions,
header checks, pending updates, relays, and hub-less box↔box sync (in memory)."""

from __future__ import annotations

import dataclasses

import pytest

from shared.blobs import BlobDecryptError, BlobFields, open_blob, read_header, seal_blob
from shared.crypto import KeyRing, TownKeys
from shared.registry import Upsert
from shared.storage import MemoryStorage, SqliteStorage
from shared.sync import content, identity
from shared.sync.errors import WireError
from shared.sync.identity import Identity
from shared.sync.log import BlobLog, Outcome, WriterHave
from shared.sync.messages import (
    Exchange,
    Hello,
    Refusal,
    Reply,
    Welcome,
    decode,
    encode,
    sign,
)
from shared.sync.peer import SyncPeer
from shared.sync.protocol import Initiator, Limits, NonceBook, Responder, State
from shared.sync.replica import SyncReplica, load_or_create_identity, seal_documents
from shared.sync.transport import Faults, MemoryNetwork

SEIRO, IZUMOZAKI = "15307", "15405"
KEYS = {t: TownKeys.generate(t) for t in (SEIRO, IZUMOZAKI)}


def ring(town: str) -> KeyRing:
    return KeyRing(town, [KEYS[town]])


def replica(keyed: tuple[str, ...] = (SEIRO, IZUMOZAKI), **kw: object) -> SyncReplica:
    storage = kw.pop("storage", None) or MemoryStorage()
    writer = kw.pop("writer", None) or Identity.generate()
    return SyncReplica(
        storage,  # type: ignore[arg-type]
        writer,  # type: ignore[arg-type]
        keyrings=[ring(t) for t in keyed],
        shards=2,
        **kw,  # type: ignore[arg-type]
    )


def household(record_id: str, **fields: object) -> Upsert:
    return Upsert("households", record_id, dict(fields), dict(fields))


def block(record_id: str, **fields: object) -> Upsert:
    return Upsert("support_blocks", record_id, dict(fields), dict(fields))


def run(initiator: Initiator, responder: Responder, now: float = 0.0) -> int:
    """Drive one session directly (through the wire codec); returns messages sent."""
    message = decode(encode(initiator.start()))
    sent = 1
    while message is not None:
        answer = decode(encode(responder.handle(message, now)))
        sent += 1
        nxt = initiator.receive(answer)
        message = None if nxt is None else decode(encode(nxt))
        sent += nxt is not None
    return sent


def sync(a: SyncReplica, b: SyncReplica, limits: Limits | None = None) -> Initiator:
    limits = limits or Limits()
    initiator = Initiator(a.log, a.writer, None, limits=limits)
    run(initiator, Responder(b.log, b.writer.writer_id, limits=limits))
    assert initiator.state is State.DONE, initiator.error
    return initiator


# ---------------------------------------------------------------------------- log


def test_redelivery_is_a_silent_no_op_and_a_second_blob_for_a_slot_is_a_conflict() -> None:
    writer = replica()
    (ref,) = writer.edit(SEIRO, [household("h1", size=1)])
    blob = writer.log.load(ref)
    relay = BlobLog(MemoryStorage())
    assert relay.add(blob).outcome is Outcome.STORED
    assert relay.add(blob).outcome is Outcome.DUPLICATE
    # The same writer signing a different blob for the same sequence number.
    other = content.pack(
        content.Content(SEIRO, ref.document, ref.writer, ref.seq, content.Kind.UPDATE, b"x")
    )
    forged = seal_blob(
        other,
        BlobFields(ref.document, ref.writer, ref.seq),
        KEYS[SEIRO].public,
        writer.writer.signing_key,
    )
    assert relay.add(forged).outcome is Outcome.CONFLICT
    assert relay.load(relay.ref(*ref.slot)) == blob  # type: ignore[arg-type]
    assert [c.slot for c in relay.conflicts] == [ref.slot]


def test_forged_and_malformed_blobs_are_refused_by_a_keyless_relay() -> None:
    writer = replica()
    (ref,) = writer.edit(SEIRO, [household("h1", size=1)])
    blob = bytearray(writer.log.load(ref))
    blob[-1] ^= 1  # break the signature
    relay = BlobLog(MemoryStorage())
    assert relay.add(bytes(blob)).outcome is Outcome.REFUSED
    assert relay.add(b"not a blob").outcome is Outcome.REFUSED
    # Signed by someone else under this writer's id: the self-certifying id refuses it.
    impostor = Identity.generate()
    fake = seal_blob(
        b"", BlobFields(ref.document, ref.writer, 9), KEYS[SEIRO].public, impostor.signing_key
    )
    assert relay.add(fake).outcome is Outcome.REFUSED
    assert relay.count() == 0


def test_have_is_contiguous_with_extras_and_survives_a_restart() -> None:
    storage = MemoryStorage()
    writer = replica(storage=MemoryStorage())
    refs = [writer.edit(SEIRO, [household(f"h{i}", n=i)])[0] for i in range(5)]
    log = BlobLog(storage)
    log.add_many([writer.log.load(refs[i]) for i in (0, 1, 3)])
    w = writer.writer.writer_id
    assert log.have([SEIRO]) == {SEIRO: {w: WriterHave(2, (4,))}}
    assert BlobLog(storage).have([SEIRO]) == {SEIRO: {w: WriterHave(2, (4,))}}
    batch, more = writer.log.missing_for(log.have([SEIRO]), [SEIRO], max_blobs=10, max_bytes=10**6)
    assert [r.seq for r in batch] == [3, 5] and not more


def test_identity_and_sequence_numbers_continue_after_a_restart() -> None:
    storage = MemoryStorage()
    first = load_or_create_identity(storage)
    one = SyncReplica(storage, first, keyrings=[ring(SEIRO)], shards=2)
    one.edit(SEIRO, [household("h1", a=1)])
    again = load_or_create_identity(storage)
    assert again.writer_id == first.writer_id
    two = SyncReplica(storage, again, keyrings=[ring(SEIRO)], shards=2)
    assert two.records(SEIRO, "shard-000", "households") | two.records(
        SEIRO, "shard-001", "households"
    ) == {"h1": {"a": 1}}
    (ref,) = two.edit(SEIRO, [household("h1", a=2)])
    assert ref.seq == 2


def test_log_over_sqlite_lands_blob_and_index_together(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "log.db"
    storage = SqliteStorage(path)
    writer = SyncReplica(storage, Identity.generate(), keyrings=[ring(SEIRO)], shards=2)
    writer.edit(SEIRO, [block("b1", reason="dv"), household("h1", n=1)])
    storage.close()
    reopened = SqliteStorage(path)
    log = BlobLog(reopened)
    assert log.count(SEIRO) == 2
    assert {k[3] for k, _ in reopened.load_range((SEIRO, "log"))} == {
        k[3] for k, _ in reopened.load_range((SEIRO, "logmeta"))
    }
    reopened.close()


# ---------------------------------------------------------------------------- reconcile


def test_a_pull_larger_than_one_batch_completes_in_one_session() -> None:
    hub, box = replica(), replica()
    for i in range(10):
        hub.edit(SEIRO, [household(f"h{i}", n=i)])
    initiator = sync(box, hub, Limits(batch_blobs=3))
    assert box.log.count() == 10 and initiator.stats.stored == 10
    assert initiator.stats.rounds == 4  # 3 + 3 + 3 + 1


def test_blocks_travel_first_in_every_exchange() -> None:
    hub, box = replica(), replica()
    for i in range(6):
        hub.edit(SEIRO, [household(f"h{i}", n=i)])
    hub.edit(SEIRO, [block("b1", reason="dv")])  # the newest, highest sequence number
    initiator = Initiator(box.log, box.writer, None, limits=Limits(batch_blobs=1))
    responder = Responder(hub.log, hub.writer.writer_id, limits=Limits(batch_blobs=1))
    welcome = responder.handle(initiator.start(), 0.0)
    first = initiator.receive(welcome)
    assert isinstance(first, Exchange)
    reply = responder.handle(first, 0.0)
    assert isinstance(reply, Reply) and reply.more
    (blob,) = list(reply.blobs)
    assert read_header(blob).document == f"{SEIRO}/blocks"
    initiator.receive(reply)
    # The block is applied although the earlier shard blobs have not arrived yet.
    assert box.records(SEIRO, "blocks", "support_blocks") == {"b1": {"reason": "dv"}}


def test_an_update_with_missing_dependencies_is_pending_until_they_arrive() -> None:
    a, b = replica(), replica()
    first = a.edit(SEIRO, [household("h1", n=1)])
    second = a.edit(SEIRO, [household("h1", n=2)])
    b.log.add(a.log.load(second[0]))
    assert b.pending() == {(SEIRO, second[0].document.split("/")[1]): [(a.writer.writer_id, 2)]}
    b.log.add(a.log.load(first[0]))
    assert b.pending() == {}
    assert b.records(SEIRO, second[0].document.split("/")[1], "households") == {"h1": {"n": 2}}


def test_a_header_that_disagrees_with_the_contents_is_flagged_and_not_applied() -> None:
    liar = Identity.generate()
    plaintext = content.pack(
        content.Content(SEIRO, f"{SEIRO}/shard-000", liar.writer_id, 1, content.Kind.UPDATE, b"")
    )
    blob = seal_blob(
        plaintext,
        BlobFields(f"{SEIRO}/blocks", liar.writer_id, 1),
        KEYS[SEIRO].public,
        liar.signing_key,
    )
    reader = replica()
    assert reader.log.add(blob).outcome is Outcome.STORED  # relays route on the header
    (flag,) = reader.flags
    assert flag.kind == "header-mismatch" and "document" in flag.detail
    assert "blocks" not in reader.registries[SEIRO].documents


# ---------------------------------------------------------------------------- sessions


def _session(box: SyncReplica, hub: SyncReplica) -> tuple[Initiator, Responder, Exchange]:
    initiator = Initiator(box.log, box.writer, None)
    responder = Responder(hub.log, hub.writer.writer_id)
    exchange = initiator.receive(responder.handle(initiator.start(), 0.0))
    assert isinstance(exchange, Exchange)
    return initiator, responder, exchange


def test_a_replayed_exchange_is_refused_and_changes_nothing() -> None:
    box, hub = replica(), replica()
    box.edit(SEIRO, [household("h1", n=1)])
    _, responder, exchange = _session(box, hub)
    assert isinstance(responder.handle(exchange, 1.0), Reply)
    count = hub.log.count()
    replayed = responder.handle(exchange, 2.0)
    assert isinstance(replayed, Refusal) and replayed.code == "nonce"
    assert hub.log.count() == count


def test_nonces_expire_and_are_bound_to_their_session() -> None:
    book = NonceBook(ttl_s=10)
    nonce = book.issue("s1", 0.0, 1, ())
    assert book.consume(nonce, "s2", 1.0) is None  # another session: and now it is gone
    nonce = book.issue("s1", 0.0, 1, ())
    assert book.consume(nonce, "s1", 11.0) is None
    nonce = book.issue("s1", 0.0, 1, ())
    assert book.consume(nonce, "s1", 9.0) is not None
    small = NonceBook(capacity=2)
    oldest = small.issue("s", 0.0, 1, ())
    small.issue("s", 0.0, 1, ())
    small.issue("s", 0.0, 1, ())
    assert len(small) == 2 and small.consume(oldest, "s", 0.0) is None


def test_an_exchange_signed_by_another_key_or_by_an_unenrolled_peer_is_refused() -> None:
    box, hub = replica(), replica()
    box.edit(SEIRO, [household("h1", n=1)])
    _, responder, exchange = _session(box, hub)
    stranger = Identity.generate()
    forged = sign(exchange, stranger.signing_key)  # signature no longer matches `peer`
    refused = responder.handle(forged, 0.0)
    assert isinstance(refused, Refusal) and refused.code == "auth"
    assert hub.log.count() == 0
    _, _, exchange = _session(box, hub)
    strict = Responder(hub.log, hub.writer.writer_id, authorize=lambda peer: False)
    welcome = strict.handle(Hello("s", box.writer.writer_id, (SEIRO,)), 0.0)
    assert isinstance(welcome, Welcome)
    attempt = sign(
        dataclasses.replace(exchange, session="s", nonce=welcome.nonce), box.writer.signing_key
    )
    refused = strict.handle(attempt, 0.0)
    assert isinstance(refused, Refusal) and refused.code == "auth"
    assert hub.log.count() == 0


def test_peers_one_protocol_version_apart_still_sync() -> None:
    hub, box = replica(), replica()
    hub.edit(SEIRO, [household("h1", n=1)])
    box.edit(SEIRO, [household("h2", n=2)])
    newer = Initiator(box.log, box.writer, None, versions=(1, 2))  # a box one version ahead
    older = Responder(hub.log, hub.writer.writer_id, versions=(1, 1))  # the hub behind
    run(newer, older)
    assert newer.state is State.DONE and newer.protocol == 1
    assert hub.log.have([SEIRO]) == box.log.have([SEIRO])
    # And the other way round: an older box against a newer hub.
    hub.edit(SEIRO, [household("h3", n=3)])
    older_box = Initiator(box.log, box.writer, None, versions=(1, 1))
    run(older_box, Responder(hub.log, hub.writer.writer_id, versions=(1, 2)))
    assert older_box.state is State.DONE and hub.log.have([SEIRO]) == box.log.have([SEIRO])


def test_peers_two_versions_apart_are_refused_with_a_clear_reason() -> None:
    hub, box = replica(), replica()
    too_new = Initiator(box.log, box.writer, None, versions=(3, 3))
    run(too_new, Responder(hub.log, hub.writer.writer_id, versions=(1, 1)))
    assert too_new.state is State.FAILED and too_new.refusal_code == "protocol"
    assert "3..3" in too_new.error


def test_unknown_header_fields_from_a_newer_peer_are_ignored() -> None:
    raw = encode(Hello("s", "ed25519:" + "00" * 32, (SEIRO,), protocol=2))
    import json
    import struct

    length = struct.unpack(">I", raw[5:9])[0]
    header = json.loads(raw[9 : 9 + length])
    header["future_field"] = {"anything": [1, 2]}
    body = json.dumps(header).encode()
    patched = raw[:5] + struct.pack(">I", len(body)) + body
    message = decode(patched)
    assert isinstance(message, Hello) and message.protocol == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RKSY",
        b"XXXX\x01\x00\x00\x00\x02{}",
        b"RKSY\x09\x00\x00\x00\x02{}",
        b"RKSY\x01\xff\xff\xff\xff{}",
        b"RKSY\x01\x00\x00\x00\x02[]",
        b'RKSY\x01\x00\x00\x00\x0b{"type":"x"}',
    ],
)
def test_malformed_messages_are_wire_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


def test_a_truncated_blob_frame_is_a_wire_error() -> None:
    box = replica()
    (ref,) = box.edit(SEIRO, [household("h1", n=1)])
    raw = encode(Reply("s", 1, "n", {}, [box.log.load(ref)]))
    with pytest.raises(WireError):
        decode(raw[:-1])
    with pytest.raises(WireError):
        decode(raw + b"x")
    with pytest.raises(WireError):
        decode(raw, max_total=len(raw) - 1)


# ---------------------------------------------------------------------------- relays


def test_a_box_without_a_towns_key_stores_and_forwards_its_blobs_and_cannot_open_them() -> None:
    writer = replica()
    writer.edit(IZUMOZAKI, [block("b1", reason="dv"), household("h1", name="出雲 花子")])
    relay = replica(keyed=(SEIRO,))  # this box holds Seirō's key only
    reader = replica(keyed=(IZUMOZAKI,))
    sync(relay, writer)
    assert relay.log.count(IZUMOZAKI) == 2
    assert IZUMOZAKI not in relay.registries and relay.flags == []
    for ref in relay.log.refs(IZUMOZAKI):
        with pytest.raises(BlobDecryptError):
            open_blob(relay.log.load(ref), ring(SEIRO), identity.lookup())
        assert "出雲".encode() not in relay.log.load(ref)
    sync(reader, relay)  # the writer is gone: the relay alone passes the town on
    assert reader.records(IZUMOZAKI, "blocks", "support_blocks") == {"b1": {"reason": "dv"}}


def test_a_box_configured_for_some_towns_neither_accepts_nor_offers_others() -> None:
    writer = replica()
    writer.edit(IZUMOZAKI, [household("h1", n=1)])
    writer.edit(SEIRO, [household("h1", n=1)])
    narrow = replica(keyed=(SEIRO,), towns=(SEIRO,))
    sync(narrow, writer)
    assert narrow.log.towns() == [SEIRO]
    stray = writer.log.load(next(writer.log.refs(IZUMOZAKI)))
    assert narrow.log.add(stray).outcome is Outcome.REFUSED


# ---------------------------------------------------------------------------- no hub


def test_with_the_hub_stopped_an_edit_on_box_a_reaches_box_b_and_later_the_hub_once() -> None:
    network = MemoryNetwork(seed=6, faults=Faults(loss=0.2, duplicate=0.2, reorder=0.5))
    names = ("hub", "a", "b")
    replicas = {n: replica() for n in names}
    peers = {
        n: SyncPeer(n, replicas[n].log, replicas[n].writer, network.endpoint(n), timeout=3)
        for n in names
    }

    def settle(initiator: str, responder: str) -> None:
        peers[initiator].outcomes.clear()
        peers[initiator].sync_with(responder)
        for _ in range(10_000):
            if not peers[initiator].sessions:
                break
            if not network.step():
                for peer in peers.values():
                    peer.tick(1)
            for n in names:
                if n != "hub" or not hub_stopped:
                    peers[n].poll()
        assert [o.state for o in peers[initiator].outcomes][-1:] == [State.DONE]

    hub_stopped = True
    network.restart("hub")
    (ref,) = replicas["a"].edit(SEIRO, [block("b9", reason="stalking")])
    settle("a", "b")
    assert replicas["b"].records(SEIRO, "blocks", "support_blocks") == {
        "b9": {"reason": "stalking"}
    }
    assert replicas["hub"].log.count() == 0
    hub_stopped = False
    settle("b", "hub")
    settle("a", "hub")  # a offers the same blob again: the hub already holds it
    hub_log = replicas["hub"].log
    assert hub_log.count() == 1 and hub_log.holds(*ref.slot)
    assert replicas["hub"].records(SEIRO, "blocks", "support_blocks") == {
        "b9": {"reason": "stalking"}
    }
    assert len(hub_log.storage.load_range((SEIRO, "log"))) == 1


# ---------------------------------------------------------------------------- transport


def test_the_memory_network_is_seeded_bounded_and_honours_partitions_and_restarts() -> None:
    def trace(seed: int) -> list[bytes]:
        network = MemoryNetwork(seed, Faults(loss=0.3, duplicate=0.3, reorder=1.0))
        a, b = network.endpoint("a"), network.endpoint("b")
        for i in range(50):
            a.send("b", bytes([i]))
        while network.step():
            pass
        got = []
        while (item := b.receive()) is not None:
            got.append(item[1])
        return got

    assert trace(1) == trace(1) and trace(1) != trace(2)
    network = MemoryNetwork(0, capacity=3)
    a, b = network.endpoint("a"), network.endpoint("b")
    for i in range(5):
        a.send("b", bytes([i]))
    assert network.in_flight() == 3 and network.stats.overflowed == 2
    network.partition("a", "b")
    while network.step():
        pass
    assert b.receive() is None
    network.heal("a", "b")
    a.send("b", b"x")
    network.step()
    network.restart("b")
    assert b.receive() is None


def test_seal_documents_writes_for_a_town_with_only_its_public_key() -> None:
    hub_log = BlobLog(MemoryStorage())
    importer = Identity.generate()
    from shared.crdt import RecordDocument

    document = RecordDocument(f"{SEIRO}/blocks")
    document.set_fields("support_blocks", "b1", {"reason": "dv"})
    document.commit()
    results = seal_documents(
        hub_log,
        importer,
        KEYS[SEIRO].public,
        {"blocks": document.export_snapshot()},
        content.Kind.SNAPSHOT,
    )
    assert [r.outcome for r in results] == [Outcome.STORED]
    reader = replica(keyed=(SEIRO,))
    sync(reader, SyncReplica(hub_log.storage, importer, shards=2))
    assert reader.records(SEIRO, "blocks", "support_blocks") == {"b1": {"reason": "dv"}}
