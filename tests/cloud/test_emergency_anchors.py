"""The hub's mailbox for emergency records (cloud/emergency.py) and its anchor store for
boxes' audit heads (cloud/anchors.py), in-process: what each takes and what it refuses.
The real-process tests are tests/edge/test_box_emergency.py and test_box_anchoring.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from cloud.anchors import AnchorRefused, record_statement
from cloud.emergency import FEED, accept_posted
from cloud.enrolment import BoxRow, Registry, TokenRow
from cloud.store import towns_entry
from edge.anchoring import chain_heads, signed_statement
from shared.activation import (
    ActivationRefused,
    BreakGlass,
    Refusal,
    issue_activation,
    issue_revocation,
)
from shared.audit import (
    AnchorStore,
    AuditKind,
    AuditLog,
    AuditWriter,
    ChainHead,
    Fault,
    WriterDirectory,
    box_writer_id,
    verify_town,
)
from shared.crypto import (
    ClerkKeys,
    EnrolmentIssuer,
    FederationRoot,
    KeyRing,
    TownKeys,
    issue_box_certificate,
    issue_clerk_certificate,
    issue_issuer_certificate,
    key_id,
)
from shared.model import Role
from shared.storage import MemoryStorage

A, HOST = "15405", "15307"
T0 = int(datetime(2026, 4, 1, 9, 0, tzinfo=UTC).timestamp())
KEYS = {town: TownKeys.generate(town) for town in (A, HOST)}


def _clerk(town: str, login: str, *roles: Role, rank: int = 0) -> ClerkKeys:
    keys = ClerkKeys.generate(town, login)
    cert = issue_clerk_certificate(
        KEYS[town], keys.public, roles=roles or (Role.CLERK,), on_roster=True,
        deputy_rank=rank, issued_at=datetime.fromtimestamp(T0 - 86400, UTC),
    )  # fmt: skip
    _CERTS.append(cert)
    return keys


_CERTS: list = []  # type: ignore[type-arg]
DEPUTY = _clerk(A, "deputy", Role.REPRESENTATIVE, rank=1)
CLERK = _clerk(A, "clerk")


@pytest.fixture
def hub() -> MemoryStorage:
    storage = MemoryStorage()
    for town in (A, HOST):
        storage.save(*towns_entry(storage, town))
        storage.save((town, "public"), json.dumps(KEYS[town].public.to_json()).encode())
    for cert in _CERTS:
        record = json.dumps({"certificate": cert.to_json()}).encode()
        storage.save((cert.town, "credential", cert.login_id), record)
    return storage


def _activation(signer: ClerkKeys = DEPUTY, host: str = HOST) -> dict:  # type: ignore[type-arg]
    record = issue_activation(
        signer, host_town=host, host_box="box-15307", clerks=["clerk"],
        not_before=T0, expires_at=T0 + 3600,
    )  # fmt: skip
    return record.to_json()


def test_the_mailbox_keeps_a_deputys_records_once(hub: MemoryStorage) -> None:
    new, record = accept_posted(hub, HOST, _activation())
    assert new and not accept_posted(hub, HOST, _activation())[0]  # posted again: kept once
    revocation = issue_revocation(DEPUTY, target=record.id, at=T0 + 60)
    assert accept_posted(hub, HOST, {"code": revocation.to_code()})[0]
    assert len(hub.load_range((HOST, FEED))) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (dict(_activation(), expires_at=T0 + 99 * 3600, id=None), Refusal.BAD_SIGNATURE),
        (_activation(CLERK), Refusal.NOT_DEPUTY),
        (_activation(host=A), Refusal.WRONG_HOST),
        ({"code": "0000-0000"}, Refusal.MALFORMED),  # check symbols fine, no record
        ("not a record", Refusal.TYPO),  # text is read as a code
        (["a", "list"], Refusal.MALFORMED),
    ],
)
def test_the_mailbox_refuses_what_a_box_would_refuse(
    hub: MemoryStorage, body: object, reason: Refusal
) -> None:
    if isinstance(body, dict) and body.get("id", "") is None:
        del body["id"]
    with pytest.raises(ActivationRefused) as refused:
        accept_posted(hub, HOST, body)
    assert refused.value.reason is reason
    assert hub.load_range((HOST, FEED)) == []


def test_a_break_glass_is_made_on_the_host_box_not_delivered(hub: MemoryStorage) -> None:
    glass = BreakGlass.draft(
        stricken_town=A, host_town=HOST, host_box="box-15307", clerks=["clerk"], now=T0
    ).signed_by(CLERK)
    with pytest.raises(ActivationRefused) as refused:
        accept_posted(hub, HOST, glass.to_json())
    assert refused.value.reason is Refusal.WRONG_KIND


ROOT = FederationRoot.generate()


def _issuer(root: FederationRoot) -> EnrolmentIssuer:
    key = SigningKey.generate()
    cert = issue_issuer_certificate(
        root, key.verify_key, key.verify_key.to_curve25519_public_key(),
        issued_at=datetime.fromtimestamp(T0 - 86400, UTC),
        expires_at=datetime.fromtimestamp(T0 + 400 * 86400, UTC),
    )  # fmt: skip
    return EnrolmentIssuer(key, cert)


def enrol(
    registry: Registry, box: str, key: SigningKey, root: FederationRoot = ROOT,
    at: float = T0 - 3600,
) -> None:  # fmt: skip
    """What `renkei enroll` leaves in the hub's registry: a used token and the box's row
    with its certificate from the hub's enrolment issuer (chained to `root`)."""
    cert = issue_box_certificate(
        _issuer(root), box, town=HOST, sealing_key=key.verify_key.to_curve25519_public_key(),
        verify_key=key.verify_key, issued_at=datetime.fromtimestamp(at, UTC),
        expires_at=datetime.fromtimestamp(T0, UTC) + timedelta(days=365),
    )  # fmt: skip
    hashed = f"hash-{box}-{key_id(key.verify_key)}"
    token = TokenRow(hashed, box, HOST, at - 3600, T0 + 86400, None, None, None, None)
    registry.add_token(token)
    row = BoxRow(
        box, HOST, bytes(key.verify_key).hex(), f"peer-{key_id(key.verify_key)}",
        json.dumps(cert.to_json()), "00", at, None, None, None,
    )  # fmt: skip
    assert registry.consume_and_enrol(token, row, at)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(tmp_path / "hub.db")
    registry.set_setting("root", bytes(ROOT.verify_key).hex())
    yield registry
    registry.close()


def _box_heads(entries: int, key: SigningKey) -> MemoryStorage:
    box = MemoryStorage()
    log = AuditLog(box, KEYS[HOST].public)
    writer = AuditWriter.for_box("box-15307", key)
    for i in range(entries):
        log.append(writer, AuditKind.LOGIN_OK, {"n": i}, float(T0 + i))
    return box


def test_anchors_are_taken_from_the_enrolled_key_only(
    hub: MemoryStorage, registry: Registry
) -> None:
    key = SigningKey.generate()
    box = _box_heads(3, key)
    heads = chain_heads(box, [HOST, A])
    assert [h["seq"] for h in heads[HOST]] == [3]
    writer = box_writer_id("box-15307")

    # Not enrolled: refused, however well signed — the first statement pins nothing.
    with pytest.raises(AnchorRefused, match="not enrolled") as refused:
        record_statement(hub, signed_statement("box-15307", key, heads, T0), registry, now=T0)
    assert refused.value.status == 403
    assert AnchorStore(hub, HOST).get(writer) is None
    # Then it still is not taken on a second try (nothing was pinned by the first).
    with pytest.raises(AnchorRefused, match="not enrolled"):
        record_statement(hub, signed_statement("box-15307", key, heads, T0), registry, now=T0)

    enrol(registry, "box-15307", key)
    result = record_statement(hub, signed_statement("box-15307", key, heads, T0), registry, now=T0)
    assert result == {"stored": 1, "conflicts": []}
    assert AnchorStore(hub, HOST).get(writer) == ChainHead.from_json(heads[HOST][0])
    # The key audit verify checks the box's entries with is the registry's certified one,
    # not one filed from a statement.
    assert hub.load((HOST, "audit-writer", writer)) is None
    assert [k.box_key for k in registry.box_keys()] == [bytes(key.verify_key).hex()]

    # Another key for the same box: refused, nothing moves.
    intruder = SigningKey.generate()
    fake = {HOST: [ChainHead(writer, 9, bytes(32)).to_json()]}
    with pytest.raises(AnchorRefused) as refused:
        record_statement(hub, signed_statement("box-15307", intruder, fake, T0), registry, now=T0)
    assert refused.value.status == 403
    # The box's key, but a statement altered after signing: refused.
    altered = signed_statement("box-15307", key, heads, T0)
    altered["statement"]["heads"] = fake
    with pytest.raises(AnchorRefused):
        record_statement(hub, altered, registry, now=T0)
    # An older head does not move the anchor back; a different hash at the same seq is
    # reported as a conflict (a rewritten chain).
    older = {HOST: [dict(heads[HOST][0], seq=2)]}
    stated = signed_statement("box-15307", key, older, T0)
    assert record_statement(hub, stated, registry, now=T0)["stored"] == 0
    forked = {HOST: [dict(heads[HOST][0], hash="ab" * 32)]}
    result = record_statement(hub, signed_statement("box-15307", key, forked, T0), registry, now=T0)
    assert result["stored"] == 0 and result["conflicts"][0]["writer"] == writer
    assert AnchorStore(hub, HOST).get(writer) == ChainHead.from_json(heads[HOST][0])

    # Revoked: refused from then on.
    registry.revoke("box-15307", "lost", T0 + 10)
    newer = {HOST: [dict(heads[HOST][0], seq=4)]}
    with pytest.raises(AnchorRefused, match="revoked"):
        record_statement(hub, signed_statement("box-15307", key, newer, T0), registry, now=T0)


def _chain(writer: str, key: SigningKey, times: list[float]) -> MemoryStorage:
    box = MemoryStorage()
    log = AuditLog(box, KEYS[HOST].public)
    for i, at in enumerate(times):
        log.append(AuditWriter(writer, key), AuditKind.LOGIN_OK, {"n": i}, at)
    return box


def test_a_re_enrolled_box_keeps_each_key_with_its_period(
    hub: MemoryStorage, registry: Registry
) -> None:
    """The box's disk is replaced and it enrols again with a new key at T0: the hub keeps
    both keys, the old one valid until T0. Entries are checked with the key their chain
    names and refused when made after that key was retired; the old key's heads are
    refused from T0 on and it is on the revocation list; the new chain is anchored apart."""
    old, new = SigningKey.generate(), SigningKey.generate()
    enrol(registry, "box-15307", old, at=T0 - 3600)
    first = box_writer_id("box-15307")
    assert registry.audit_writer_of("box-15307", bytes(old.verify_key).hex()) == first
    old_box = _chain(first, old, [T0 - 3000, T0 - 2000, T0 - 1000])
    heads = chain_heads(old_box, [HOST])
    assert record_statement(hub, signed_statement("box-15307", old, heads, T0 - 900),
                            registry, now=T0 - 900)["stored"] == 1  # fmt: skip

    enrol(registry, "box-15307", new, at=T0)
    second = box_writer_id("box-15307", key_id(new.verify_key)[:16])
    assert registry.audit_writer_of("box-15307", bytes(new.verify_key).hex()) == second
    assert registry.retired(bytes(old.verify_key).hex())
    assert not registry.retired(bytes(new.verify_key).hex())
    listed = registry.revocations()["revoked"]
    assert [r["key"] for r in listed] == [bytes(old.verify_key).hex()]
    assert "re-enrolled" in listed[0]["reason"]

    # The old key's heads are refused after the re-enrolment; the new chain is anchored
    # under its own writer, and the old chain's anchor stays where it was.
    late = {HOST: [ChainHead(first, 4, bytes(32)).to_json()]}
    with pytest.raises(AnchorRefused, match="does not name") as refused:
        record_statement(hub, signed_statement("box-15307", old, late, T0 + 5), registry,
                         now=T0 + 5)  # fmt: skip
    assert refused.value.status == 403
    new_box = _chain(second, new, [T0 + 10, T0 + 20])
    new_heads = chain_heads(new_box, [HOST])
    assert record_statement(hub, signed_statement("box-15307", new, new_heads, T0 + 30),
                            registry, now=T0 + 30) == {"stored": 1, "conflicts": []}  # fmt: skip
    anchors = AnchorStore(hub, HOST).all()
    assert anchors[first] == ChainHead.from_json(heads[HOST][0])
    assert anchors[second] == ChainHead.from_json(new_heads[HOST][0])

    # What `renkei audit verify` builds: every certified key with its period.
    keys = registry.audit_box_keys()["box-15307"]
    assert [k.retired_at for k in keys] == [T0, None]
    directory = WriterDirectory(boxes=registry.audit_box_keys())
    ring = KeyRing(HOST, [KEYS[HOST]])
    assert verify_town(old_box, ring, directory, anchors, writers=[first]).ok
    assert verify_town(new_box, ring, directory, anchors, writers=[second]).ok
    # Each chain only with the key it names: the new chain is not the old key's.
    only_old = WriterDirectory(boxes={"box-15307": [keys[0]]})
    assert not verify_town(new_box, ring, only_old, {}, writers=[second]).ok

    # An entry the old key signs after it was replaced is named, the earlier ones stand.
    AuditLog(old_box, KEYS[HOST].public).append(
        AuditWriter(first, old), AuditKind.LOGIN_OK, {}, float(T0 + 60)
    )
    report = verify_town(old_box, ring, directory, anchors, writers=[first])
    assert report.first is not None
    assert (report.first.seq, report.first.fault) == (4, Fault.RETIRED_KEY)
    assert report.chains[first].entries == 3


def test_a_box_key_whose_certificate_does_not_chain_to_the_root_verifies_nothing(
    registry: Registry,
) -> None:
    rogue = SigningKey.generate()
    enrol(registry, "box-rogue", rogue, root=FederationRoot.generate())  # forged row
    assert "box-rogue" not in registry.audit_box_keys()
    store = _chain(box_writer_id("box-rogue"), rogue, [T0])
    report = verify_town(
        store, KeyRing(HOST, [KEYS[HOST]]), WriterDirectory(boxes=registry.audit_box_keys()), {}
    )
    assert report.first is not None and report.first.fault is Fault.UNKNOWN_WRITER


def test_a_certificate_from_another_root_or_for_another_box_is_refused(
    hub: MemoryStorage, registry: Registry
) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    heads = chain_heads(_box_heads(1, key), [HOST])
    enrol(registry, "box-rogue", key, root=FederationRoot.generate())  # not our root
    with pytest.raises(AnchorRefused, match="does not verify"):
        record_statement(hub, signed_statement("box-rogue", key, heads, T0), registry, now=T0)
    enrol(registry, "box-other", other)
    # box-other is enrolled, but the statement in its name is signed by another key
    with pytest.raises(AnchorRefused, match="does not name"):
        record_statement(hub, signed_statement("box-other", key, heads, T0), registry, now=T0)
    assert (
        record_statement(hub, signed_statement("box-other", other, heads, T0), registry, now=T0)[
            "conflicts"
        ]
        == []
    )
    # after its certificate expired
    later = T0 + 400 * 86400
    with pytest.raises(AnchorRefused, match="does not verify"):
        record_statement(hub, signed_statement("box-other", other, heads, T0), registry, now=later)


def test_a_hub_without_a_federation_root_takes_no_anchors(
    hub: MemoryStorage, tmp_path: Path
) -> None:
    key = SigningKey.generate()
    heads = chain_heads(_box_heads(1, key), [HOST])
    bare = Registry(tmp_path / "bare.db")
    try:
        with pytest.raises(AnchorRefused, match="no federation root"):
            record_statement(hub, signed_statement("box-15307", key, heads, T0), bare, now=T0)
    finally:
        bare.close()


def test_a_malformed_statement_is_refused(hub: MemoryStorage, registry: Registry) -> None:
    with pytest.raises(AnchorRefused) as refused:
        record_statement(hub, {"statement": {"box": "x"}, "key": "00", "signature": ""}, registry)
    assert refused.value.status == 400
