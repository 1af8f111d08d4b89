"""Audit chains (shared/audit.py, docs/audit.md) and `renkei audit verify`: intact chains
verify; altering any byte, deleting, reordering, cutting the tail and rolling the whole
log back are each caught and the first bad entry named; import never deletes and refuses
conflicts; details never hold secrets or 個人番号."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from shared import crypto
from shared.audit import (
    GENESIS,
    AnchorStore,
    AuditConflict,
    AuditEntry,
    AuditError,
    AuditKind,
    AuditLog,
    AuditSecretError,
    AuditWriter,
    BoxKey,
    ChainHead,
    Fault,
    TownAuditRecorder,
    VerifyReport,
    WriterDirectory,
    box_writer_id,
    entry_key,
    verify_town,
)
from shared.blobs import BlobFields, open_blob, seal_blob
from shared.crypto import (
    ClerkKeys,
    KeyRing,
    TownKeys,
    issue_clerk_certificate,
    key_id,
    rotate,
)
from shared.model import Role, my_number_check_digit
from shared.storage import MemoryStorage, SqliteStorage, StorageKey

TOWN = "15307"
KEYS = TownKeys.generate(TOWN)
RING = KeyRing(TOWN, [KEYS])
BOX = AuditWriter.for_box("seiro-1", SigningKey.generate())
CLERK = ClerkKeys.generate(TOWN, "tanaka")
CERT = issue_clerk_certificate(
    KEYS, CLERK.public, roles=[Role.CLERK], on_roster=True, issued_at=datetime.now(UTC)
)
SESSION = AuditWriter.for_session(CLERK, "a1b2c3")
WRITERS = WriterDirectory(boxes={"seiro-1": BOX.verify_key}, clerks=[CERT])
T0 = datetime(2026, 4, 1, tzinfo=UTC).timestamp()
N = 6


def build(n: int = N, storage: MemoryStorage | None = None) -> tuple[MemoryStorage, AuditLog]:
    storage = storage or MemoryStorage()
    log = AuditLog(storage, KEYS.public)
    for i in range(n):
        log.append(BOX, AuditKind.LOGIN_FAILED, {"login_id": "sato", "attempt": i}, T0 + i)
        log.append(SESSION, AuditKind.ISSUANCE, {"document": "住民票の写し", "n": i}, T0 + i)
    return storage, log


BASE, BASE_LOG = build()
BASE_ITEMS = BASE.load_range(())
HEADS: dict[str, ChainHead] = {
    w: h for w in (BOX.writer_id, SESSION.writer_id) if (h := BASE_LOG.head(w)) is not None
}


def copy(items: Iterable[tuple[StorageKey, bytes]] = BASE_ITEMS) -> MemoryStorage:
    storage = MemoryStorage()
    storage.save_many(items)
    return storage


def verify(storage: MemoryStorage, anchors: dict[str, ChainHead] | None = None) -> VerifyReport:
    return verify_town(storage, RING, WRITERS, anchors or {})


# ---------------------------------------------------------------------------- intact


def test_intact_chains_verify_and_heads_match() -> None:
    report = verify(copy(), HEADS)
    assert report.ok, report.summary()
    assert report.heads == HEADS
    assert report.chains[BOX.writer_id].entries == N
    assert report.kinds == {"login_failed": N, "issuance": N}
    assert "異常はありません" in report.summary()


def test_entries_are_sealed_chained_and_signed() -> None:
    storage = copy()
    blob = storage.load(entry_key(TOWN, SESSION.writer_id, 2))
    assert blob is not None
    assert "住民票".encode() not in blob and b"issuance" not in blob  # sealed to the town
    header, plaintext = open_blob(blob, RING, WRITERS)
    first = AuditEntry.from_plaintext(
        open_blob(storage.load(entry_key(TOWN, SESSION.writer_id, 1)) or b"", RING, WRITERS)[1]
    )
    second = AuditEntry.from_plaintext(plaintext)
    assert (header.writer_id, header.writer_seq) == (SESSION.writer_id, 2)
    assert first.prev == GENESIS and second.prev == first.hash
    assert second.verify_signature(CLERK.public.verify_key)
    assert not second.verify_signature(BOX.verify_key)


def test_a_sealed_box_writes_with_the_public_key_only() -> None:
    # AuditLog takes a TownPublic: whoever appends (a box recording a failed login while
    # every town is sealed) holds no private key of the town.
    storage = MemoryStorage()
    log = AuditLog(storage, KeyRing(TOWN, [KEYS]).public)
    log.append(BOX, AuditKind.LOGIN_FAILED, {"login_id": "x"}, T0)
    assert verify(storage).ok


# ---------------------------------------------------------------------------- tampering


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_altering_any_byte_names_that_entry(data: st.DataObject) -> None:
    writer = data.draw(st.sampled_from([BOX.writer_id, SESSION.writer_id]))
    seq = data.draw(st.integers(1, N))
    storage = copy()
    key = entry_key(TOWN, writer, seq)
    blob = bytearray(storage.load(key) or b"")
    offset = data.draw(st.integers(0, len(blob) - 1))
    blob[offset] ^= data.draw(st.integers(1, 255))
    storage.save(key, bytes(blob))
    report = verify(storage, HEADS)
    assert not report.ok
    assert report.first is not None
    assert (report.first.writer, report.first.seq, report.first.fault) == (
        writer,
        seq,
        Fault.ALTERED,
    )
    assert f"第{seq}件" in report.summary()


@settings(max_examples=30, deadline=None)
@given(writer=st.sampled_from([BOX.writer_id, SESSION.writer_id]), seq=st.integers(1, N))
def test_deleting_any_entry_names_it(writer: str, seq: int) -> None:
    storage = copy()
    storage.remove(entry_key(TOWN, writer, seq))
    report = verify(storage, HEADS)
    assert report.first is not None
    expected = Fault.DELETED if seq < N else Fault.CUT_TAIL
    assert (report.first.writer, report.first.seq, report.first.fault) == (writer, seq, expected)


def test_deleting_the_last_entry_needs_an_anchor_to_be_seen() -> None:
    storage = copy()
    storage.remove(entry_key(TOWN, BOX.writer_id, N))
    assert verify(storage).ok  # a chain cut cleanly looks whole on its own…
    report = verify(storage, HEADS)
    assert report.first is not None  # …until a head seen elsewhere says otherwise
    assert (report.first.seq, report.first.fault) == (N, Fault.CUT_TAIL)


@settings(max_examples=30, deadline=None)
@given(pair=st.lists(st.integers(1, N), min_size=2, max_size=2, unique=True))
def test_swapping_two_entries_names_the_first(pair: list[int]) -> None:
    storage = copy()
    a, b = sorted(pair)
    ka, kb = entry_key(TOWN, BOX.writer_id, a), entry_key(TOWN, BOX.writer_id, b)
    blob_a, blob_b = storage.load(ka), storage.load(kb)
    assert blob_a is not None and blob_b is not None
    storage.save_many([(ka, blob_b), (kb, blob_a)])
    report = verify(storage)
    assert report.first is not None
    assert (report.first.writer, report.first.seq, report.first.fault) == (
        BOX.writer_id,
        a,
        Fault.REORDERED,
    )


def _entries(storage: MemoryStorage, writer: str) -> list[AuditEntry]:
    return [
        AuditEntry.from_plaintext(open_blob(blob, RING, WRITERS)[1])
        for _, blob in storage.load_range((TOWN, "audit", writer))
    ]


def _store_forged(storage: MemoryStorage, entry: AuditEntry, writer: AuditWriter) -> None:
    signed = replace(entry, signature=writer.signing_key.sign(entry.signed_bytes()).signature)
    document = f"audit\x1f{writer.writer_id}\x1f{entry.seq:012d}"
    blob = seal_blob(
        signed.to_plaintext(),
        BlobFields(document, writer.writer_id, entry.seq),
        KEYS.public,
        writer.signing_key,
    )
    storage.save(entry_key(TOWN, writer.writer_id, entry.seq), blob)


def test_a_writer_reordering_its_own_entries_breaks_the_hash_links() -> None:
    # The writer holds its key and re-signs entries 3 and 4 in swapped order: every
    # signature is valid, only the prev-hash link gives it away.
    storage = copy()
    entries = _entries(storage, BOX.writer_id)
    third, fourth = entries[2], entries[3]
    _store_forged(storage, replace(fourth, seq=3), BOX)
    _store_forged(storage, replace(third, seq=4), BOX)
    report = verify(storage)
    assert report.first is not None
    assert (report.first.seq, report.first.fault) == (3, Fault.REORDERED)


def test_a_writer_rewriting_history_is_caught_by_an_anchor() -> None:
    storage = copy()
    forged: list[AuditEntry] = []
    prev = GENESIS
    for entry in _entries(storage, BOX.writer_id):
        details = {"login_id": "someone-else"} if entry.seq == 2 else entry.details
        new = replace(entry, prev=prev, details=details)
        _store_forged(storage, new, BOX)
        forged.append(new)
        prev = new.hash
    assert verify(storage).ok  # a consistent rewrite by the key holder…
    report = verify(storage, HEADS)
    assert report.first is not None  # …is not consistent with the head anchored earlier
    assert (report.first.writer, report.first.seq, report.first.fault) == (
        BOX.writer_id,
        N,
        Fault.FORKED,
    )


def test_cutting_the_tail_is_caught_against_an_anchor() -> None:
    storage = copy()
    for seq in (N - 1, N):
        storage.remove(entry_key(TOWN, SESSION.writer_id, seq))
    report = verify(storage, HEADS)
    assert [(p.writer, p.seq, p.fault) for p in report.problems] == [
        (SESSION.writer_id, N - 1, Fault.CUT_TAIL)
    ]


def test_rolling_back_the_whole_log_is_named_a_rollback() -> None:
    old, log = build(2)
    snapshot = old.load_range(())
    for i in range(3):
        log.append(BOX, AuditKind.PRINT, {"copies": i}, T0 + 100 + i)
        log.append(SESSION, AuditKind.EXPORT, {"rows": i}, T0 + 100 + i)
    anchors = AnchorStore(old, TOWN)
    for writer in (BOX.writer_id, SESSION.writer_id):
        head = log.head(writer)
        assert head is not None
        anchors.record(head, source="peer izumozaki-1", seen_at=T0 + 200)
    seen = anchors.all()
    restored = copy(snapshot)  # the disk put back from an old backup
    report = verify(restored, seen)
    assert {(p.writer, p.seq, p.fault) for p in report.problems} == {
        (BOX.writer_id, 3, Fault.ROLLBACK),
        (SESSION.writer_id, 3, Fault.ROLLBACK),
    }
    assert "巻き戻し" in report.summary()
    assert verify(copy(old.load_range((TOWN, "audit"))), seen).ok


def test_a_whole_chain_missing_against_its_anchor() -> None:
    storage = copy(kv for kv in BASE_ITEMS if kv[0][2] != SESSION.writer_id)
    report = verify(storage, HEADS)
    assert [(p.writer, p.seq, p.fault) for p in report.problems] == [
        (SESSION.writer_id, 1, Fault.CUT_TAIL)
    ]


def test_an_entry_moved_from_another_writer_is_misplaced() -> None:
    storage = copy()
    stolen = storage.load(entry_key(TOWN, SESSION.writer_id, 2))
    assert stolen is not None
    storage.save(entry_key(TOWN, BOX.writer_id, 2), stolen)
    report = verify(storage)
    assert report.first is not None
    assert (report.first.writer, report.first.seq, report.first.fault) == (
        BOX.writer_id,
        2,
        Fault.MISPLACED,
    )


def test_an_unknown_writer_is_named() -> None:
    report = verify_town(copy(), RING, WriterDirectory(clerks=[CERT]), {})
    assert report.first is not None
    assert (report.first.writer, report.first.seq, report.first.fault) == (
        BOX.writer_id,
        1,
        Fault.UNKNOWN_WRITER,
    )


# ---------------------------------------------------------------------------- import


def test_import_adds_is_idempotent_and_never_deletes() -> None:
    peer = MemoryStorage()
    log = AuditLog(peer, KEYS.public)
    blobs = [blob for _, blob in BASE.load_range((TOWN, "audit"))]
    first = log.import_blobs(blobs, WRITERS)
    assert first.ok and len(first.added) == 2 * N
    again = log.import_blobs(blobs, WRITERS)
    assert again.ok and not again.added and again.duplicates == 2 * N
    # A replica that stops short (someone deleted entries there) changes nothing here.
    short = log.import_blobs(blobs[:2], WRITERS, peer_heads={BOX.writer_id: 2})
    assert short.peer_behind == [(BOX.writer_id, N, 2)]
    assert log.stored_seqs(BOX.writer_id) == list(range(1, N + 1))
    assert verify(peer, HEADS).ok


def test_import_refuses_a_conflicting_entry_and_keeps_the_stored_one() -> None:
    peer = copy()
    log = AuditLog(peer, KEYS.public)
    # Same writer and seq, other content: the writer equivocated, or someone forged it.
    other, _ = build(1)
    rival = other.load(entry_key(TOWN, BOX.writer_id, 1))
    assert rival is not None
    report = log.import_blobs([rival], WRITERS)
    assert report.refused == [(BOX.writer_id, 1, "conflicts with the stored entry")]
    assert peer.load(entry_key(TOWN, BOX.writer_id, 1)) == BASE.load(
        entry_key(TOWN, BOX.writer_id, 1)
    )


def test_import_refuses_other_towns_unknown_writers_and_tampering() -> None:
    other_town = TownKeys.generate("15405")
    foreign_log = AuditLog(MemoryStorage(), other_town.public)
    foreign = foreign_log.append(BOX, AuditKind.LOGIN_OK, {}, T0)
    foreign_blob = foreign_log.storage.load(entry_key("15405", BOX.writer_id, foreign.seq))
    assert foreign_blob is not None
    blob = BASE.load(entry_key(TOWN, BOX.writer_id, 1))
    assert blob is not None
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    log = AuditLog(MemoryStorage(), KEYS.public)
    report = log.import_blobs([foreign_blob, tampered], WRITERS)
    report2 = log.import_blobs([blob], WriterDirectory())
    assert not report.added and len(report.refused) == 2
    assert "15405" in report.refused[0][2]
    assert "BlobSignatureError" in report.refused[1][2]
    assert "UnknownWriter" in report2.refused[0][2]
    assert log.writers() == []


class RecordingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.removed: list[StorageKey] = []

    def remove(self, key: StorageKey) -> None:
        self.removed.append(key)
        super().remove(key)


def test_nothing_in_the_audit_path_ever_removes() -> None:
    storage = RecordingStorage()
    log = AuditLog(storage, KEYS.public)
    log.import_blobs([b for _, b in BASE.load_range((TOWN, "audit"))], WRITERS)
    log.import_blobs([b for _, b in build(2)[0].load_range((TOWN, "audit"))], WRITERS)
    log.recover_head(BOX.writer_id, RING, WRITERS)
    log.append(BOX, AuditKind.LOGIN_OK, {}, T0 + 60)
    assert verify_town(storage, RING, WRITERS, HEADS).ok
    assert storage.removed == []
    assert not any(hasattr(AuditLog, name) for name in ("remove", "compact", "trim", "delete"))


# ---------------------------------------------------------------------------- heads


def test_append_refuses_to_fork_a_chain_whose_head_record_is_lost() -> None:
    storage = copy()
    storage.remove((TOWN, "audit-head", BOX.writer_id))
    log = AuditLog(storage, KEYS.public)
    with pytest.raises(AuditConflict):
        log.append(BOX, AuditKind.LOGIN_OK, {}, T0 + 50)
    head = log.recover_head(BOX.writer_id, RING, WRITERS)
    assert head == HEADS[BOX.writer_id]
    log.append(BOX, AuditKind.LOGIN_OK, {}, T0 + 50)
    assert verify(storage).ok


def test_anchors_only_move_forward_and_a_contradiction_is_refused() -> None:
    anchors = AnchorStore(MemoryStorage(), TOWN)
    head = HEADS[BOX.writer_id]
    assert head is not None
    assert anchors.record(head, source="hub", seen_at=T0)
    assert not anchors.record(replace(head, seq=head.seq - 1), source="qr", seen_at=T0)
    with pytest.raises(AuditConflict):
        anchors.record(replace(head, hash=bytes(32)), source="peer", seen_at=T0)
    assert anchors.get(BOX.writer_id) == head


def test_chains_span_a_key_rotation() -> None:
    storage, _ = build(2)
    newer = rotate(KEYS)
    log = AuditLog(storage, newer.public)
    log.append(BOX, AuditKind.KEY_ROTATION, {"epoch": newer.epoch}, T0 + 10)
    assert verify_town(storage, KeyRing(TOWN, [KEYS, newer]), WRITERS, {}).ok
    report = verify_town(storage, KeyRing(TOWN, [newer]), WRITERS, {})
    assert report.first is not None and report.first.fault is Fault.ALTERED


def test_a_session_key_replaced_by_a_password_reset_still_verifies() -> None:
    storage, _ = build(1)
    renewed = ClerkKeys.generate(TOWN, "tanaka")  # a reset gives the clerk fresh keys
    renewed_cert = issue_clerk_certificate(
        KEYS, renewed.public, roles=[Role.CLERK], on_roster=True, issued_at=datetime.now(UTC)
    )
    AuditLog(storage, KEYS.public).append(
        AuditWriter.for_session(renewed, "z9"), AuditKind.LOGIN_OK, {}, T0 + 5
    )
    both = WriterDirectory(boxes={"seiro-1": BOX.verify_key}, clerks=[CERT, renewed_cert])
    assert verify_town(storage, RING, both, {}).ok
    only_new = WriterDirectory(boxes={"seiro-1": BOX.verify_key}, clerks=[renewed_cert])
    assert verify_town(storage, RING, only_new, {}).first is not None


def test_a_box_key_is_checked_within_its_period_and_a_later_key_by_its_own_chain() -> None:
    """A box re-enrolled with a new key at T0 + 100: `box:seiro-1` is its first key's
    chain, valid until then; `box:seiro-1:<key id>` the new key's chain."""
    new = SigningKey.generate()
    periods = [
        BoxKey(BOX.verify_key, T0 - 100, replaced_at=T0 + 100),
        BoxKey(new.verify_key, T0 + 100),
    ]
    directory = WriterDirectory(boxes={"seiro-1": periods})
    later = box_writer_id("seiro-1", key_id(new.verify_key)[:16])
    assert directory(BOX.writer_id) == BOX.verify_key
    assert directory(later) == new.verify_key
    assert directory(box_writer_id("seiro-1", "0" * 16)) is None  # a key never certified
    assert (directory.retired_at(BOX.writer_id), directory.retired_at(later)) == (T0 + 100, None)

    storage, log = build(3)  # the box's entries at T0 .. T0 + 2, inside its first period
    log.append(AuditWriter(later, new), AuditKind.LOGIN_OK, {}, T0 + 200)
    assert verify_town(storage, RING, WriterDirectory(boxes={"seiro-1": periods}, clerks=[CERT]),
                       {}).ok  # fmt: skip
    # the first key again, after it was replaced: that entry is named, not the earlier ones
    log.append(BOX, AuditKind.LOGIN_FAILED, {}, T0 + 150)
    report = verify_town(storage, RING, WriterDirectory(boxes={"seiro-1": periods},
                                                        clerks=[CERT]), {})  # fmt: skip
    assert report.first is not None
    assert (report.first.writer, report.first.fault) == (BOX.writer_id, Fault.RETIRED_KEY)
    assert report.first.seq == report.chains[BOX.writer_id].entries + 1
    # a revoked key likewise
    revoked = [BoxKey(BOX.verify_key, T0 - 100, revoked_at=T0 + 120), periods[1]]
    report = verify_town(storage, RING, WriterDirectory(boxes={"seiro-1": revoked},
                                                        clerks=[CERT]), {})  # fmt: skip
    assert report.first is not None and report.first.fault is Fault.RETIRED_KEY


# ---------------------------------------------------------------------------- details


def _my_number() -> str:
    first11 = "12345678901"
    return first11 + str(my_number_check_digit(first11))


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2"},
        {"new_passphrase": "x"},
        {"private_key": "00"},
        {"pin": "1234"},
        {"resident": {"my_number": "x"}},
        {"個人番号": "x"},
        {"note": f"本人の番号 {_my_number()} を確認"},
        {"note": _my_number().translate(str.maketrans("0123456789", "０１２３４５６７８９"))},
        {"rows": [{"x": _my_number()}]},
    ],
)
def test_details_with_secrets_or_my_number_are_refused(details: dict[str, object]) -> None:
    storage = MemoryStorage()
    log = AuditLog(storage, KEYS.public)
    with pytest.raises(AuditSecretError):
        log.append(BOX, AuditKind.EXPORT, details, T0)
    assert storage.load_range(()) == []


def test_ordinary_details_pass() -> None:
    log = AuditLog(MemoryStorage(), KEYS.public)
    bad = _my_number()[:-1] + str((int(_my_number()[-1]) + 1) % 10)
    entry = log.append(
        BOX,
        AuditKind.ISSUANCE,
        {"issue_no": "R8-0401-15307-1-A-000123", "digits": bad, "key_id": "ab" * 8},
        T0,
    )
    assert entry.details["digits"] == bad
    with pytest.raises(AuditError):
        log.append(BOX, AuditKind.ISSUANCE, {"when": datetime.now(UTC)}, T0)


def test_recorder_writes_as_the_box_for_each_town() -> None:
    storage = MemoryStorage()
    recorder = TownAuditRecorder(storage, BOX, {TOWN: KEYS.public}.get, lambda: T0 + 7)
    recorder.record(TOWN, AuditKind.CONFIG_CHANGE, {"setting": "printer"})
    with pytest.raises(AuditError):
        recorder.record("15581", AuditKind.CONFIG_CHANGE, {})
    report = verify(storage)
    assert report.ok and report.chains[BOX.writer_id].last_time == T0 + 7


# ---------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cloud.app import hub_db_path
    from cloud.custody import Custody

    data = tmp_path_factory.mktemp("hub")
    custody = Custody.create()
    custody.rings[TOWN] = RING
    with pytest.MonkeyPatch.context() as patch:  # INTERACTIVE argon2id: fast tests
        patch.setattr(crypto, "DEFAULT_KDF_LIMITS", crypto.INTERACTIVE)
        custody.save(data, "operator passphrase for tests")
    storage = SqliteStorage(hub_db_path(data))
    storage.save_many(BASE_ITEMS)
    storage.save(
        (TOWN, "credential", "tanaka"),
        json.dumps({"certificate": CERT.to_json()}).encode(),
    )
    storage.save((TOWN, "audit-writer", BOX.writer_id), bytes(BOX.verify_key).hex().encode())
    storage.close()
    return data


def _run(hub: Path, *extra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    from renkei.cli import main

    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", "operator passphrase for tests")
    return main(["audit", "verify", "--data", str(hub), "--town", TOWN, *extra])


def test_cli_verifies_and_names_the_first_bad_entry(
    hub: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cloud.app import hub_db_path

    assert _run(hub, monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "異常はありません" in out and f"記録 {2 * N} 件" in out

    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps([h.to_json() for h in HEADS.values()]))
    storage = SqliteStorage(hub_db_path(hub))
    key = entry_key(TOWN, SESSION.writer_id, 4)
    original = storage.load(key)
    assert original is not None
    try:
        storage.save(key, original[:100] + bytes([original[100] ^ 4]) + original[101:])
        assert _run(hub, "--anchors", str(anchors), monkeypatch=monkeypatch) == 1
        err = capsys.readouterr().err
        assert f"最初の異常: 書き手 {SESSION.writer_id} の第4件: 改ざん" in err
        assert _run(hub, "--json", monkeypatch=monkeypatch) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["problems"][0] == {
            "writer": SESSION.writer_id,
            "seq": 4,
            "fault": "altered",
            "detail": "署名が一致しません",
        }
    finally:
        storage.save(key, original)
        storage.close()


def test_cli_refuses_a_wrong_passphrase_or_town(
    hub: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from renkei.cli import main

    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", "wrong")
    assert main(["audit", "verify", "--data", str(hub), "--town", TOWN]) == 2
    assert "パスフレーズ" in capsys.readouterr().err
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", "operator passphrase for tests")
    assert main(["audit", "verify", "--data", str(hub), "--town", "99999"]) == 2
    assert "99999" in capsys.readouterr().err
