"""The hub's mailbox for emergency records (cloud/emergency.py) and its anchor store for
boxes' audit heads (cloud/anchors.py), in-process: what each takes and what it refuses.
The real-process tests are tests/edge/test_box_emergency.py and test_box_anchoring.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from nacl.signing import SigningKey

from cloud.anchors import AnchorRefused, record_statement
from cloud.emergency import FEED, accept_posted
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
    box_writer_id,
)
from shared.crypto import ClerkKeys, TownKeys, issue_clerk_certificate
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


def _box_heads(entries: int, key: SigningKey) -> MemoryStorage:
    box = MemoryStorage()
    log = AuditLog(box, KEYS[HOST].public)
    writer = AuditWriter.for_box("box-15307", key)
    for i in range(entries):
        log.append(writer, AuditKind.LOGIN_OK, {"n": i}, float(T0 + i))
    return box


def test_anchors_pin_the_boxs_key_and_move_forward_only(hub: MemoryStorage) -> None:
    key = SigningKey.generate()
    box = _box_heads(3, key)
    heads = chain_heads(box, [HOST, A])
    assert [h["seq"] for h in heads[HOST]] == [3]
    result = record_statement(hub, signed_statement("box-15307", key, heads, T0), now=T0)
    assert result == {"stored": 1, "conflicts": []}
    writer = box_writer_id("box-15307")
    assert AnchorStore(hub, HOST).get(writer) == ChainHead.from_json(heads[HOST][0])
    assert hub.load((HOST, "audit-writer", writer)) == bytes(key.verify_key).hex().encode()

    # Another key for the same box: refused, nothing moves.
    intruder = SigningKey.generate()
    fake = {HOST: [ChainHead(writer, 9, bytes(32)).to_json()]}
    with pytest.raises(AnchorRefused) as refused:
        record_statement(hub, signed_statement("box-15307", intruder, fake, T0))
    assert refused.value.status == 403
    # The box's key, but a statement altered after signing: refused.
    altered = signed_statement("box-15307", key, heads, T0)
    altered["statement"]["heads"] = fake
    with pytest.raises(AnchorRefused):
        record_statement(hub, altered)
    # An older head does not move the anchor back; a different hash at the same seq is
    # reported as a conflict (a rewritten chain).
    older = {HOST: [dict(heads[HOST][0], seq=2)]}
    assert record_statement(hub, signed_statement("box-15307", key, older, T0))["stored"] == 0
    forked = {HOST: [dict(heads[HOST][0], hash="ab" * 32)]}
    result = record_statement(hub, signed_statement("box-15307", key, forked, T0))
    assert result["stored"] == 0 and result["conflicts"][0]["writer"] == writer
    assert AnchorStore(hub, HOST).get(writer) == ChainHead.from_json(heads[HOST][0])


def test_a_malformed_statement_is_refused(hub: MemoryStorage) -> None:
    with pytest.raises(AnchorRefused) as refused:
        record_statement(hub, {"statement": {"box": "x"}, "key": "00", "signature": ""})
    assert refused.value.status == 400
