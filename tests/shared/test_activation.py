"""Emergency access (shared/activation.py, docs/activation.md): without an activation a
visiting clerk cannot open their town on a host box; with one they can; expiry (wall clock
and elapsed time), revocation, the deputy list, the offline code, break-glass and its
ratification, town isolation and the emergency 職務代理 appointment each shown to refuse
when the condition is broken."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from shared.activation import (
    Activation,
    ActivationRefused,
    ActivationRegistry,
    Appointments,
    BreakGlass,
    Refusal,
    TownTrust,
    accept_activation,
    decode_code,
    issue_activation,
    issue_appointment,
    issue_ratification,
    issue_revocation,
    parse_record,
)
from shared.audit import AuditKind, AuditLog, AuditWriter, TownAuditRecorder, WriterDirectory
from shared.audit import verify_town as verify_audit
from shared.clock import ClockBehindFloor, TrustedClock
from shared.crypto import (
    ClerkCertificate,
    ClerkKeys,
    KeyRing,
    TownKeys,
    issue_clerk_certificate,
)
from shared.model import Official, Role
from shared.storage import MemoryStorage

A, HOST, B = "15307", "15405", "15581"  # stricken town, host town, a third town
BOX = "izumozaki-1"
T0 = int(datetime(2026, 4, 1, 9, 0, tzinfo=UTC).timestamp())
HOUR = 3600
TOWN_KEYS = {town: TownKeys.generate(town) for town in (A, HOST, B)}


def person(
    town: str, login: str, *roles: Role, roster: bool = False, rank: int = 0
) -> tuple[ClerkKeys, ClerkCertificate]:
    keys = ClerkKeys.generate(town, login)
    cert = issue_clerk_certificate(
        TOWN_KEYS[town],
        keys.public,
        roles=roles or (Role.CLERK,),
        on_roster=roster,
        deputy_rank=rank,
        issued_at=datetime.fromtimestamp(T0 - 86400 * 30, UTC),
    )
    return keys, cert


DEPUTY, DEPUTY_CERT = person(A, "rep-mayor", Role.REPRESENTATIVE, roster=True, rank=1)
NOT_LISTED, NOT_LISTED_CERT = person(A, "rep-nolist", Role.REPRESENTATIVE, rank=0)
RANK_NO_ROLE, RANK_NO_ROLE_CERT = person(A, "clerk-ranked", Role.CLERK, rank=2)
R1, R1_CERT = person(A, "r1", roster=True)
R2, R2_CERT = person(A, "r2", roster=True)
OFF, OFF_CERT = person(A, "off-roster")
SUP, SUP_CERT = person(HOST, "host-sup", Role.SUPERVISOR)
HCLERK, HCLERK_CERT = person(HOST, "host-clerk")
B_DEPUTY, B_DEPUTY_CERT = person(B, "rep-b", Role.REPRESENTATIVE, rank=1)
B1, B1_CERT = person(B, "r1", roster=True)  # same login id as A's r1, other town

CERTS = {
    A: [DEPUTY_CERT, NOT_LISTED_CERT, RANK_NO_ROLE_CERT, R1_CERT, R2_CERT, OFF_CERT],
    HOST: [SUP_CERT, HCLERK_CERT],
    B: [B_DEPUTY_CERT, B1_CERT],
}
TRUST = {town: TownTrust.of(TOWN_KEYS[town].public, CERTS[town]) for town in CERTS}


class FakeTime:
    def __init__(self) -> None:
        self.wall = float(T0)
        self.mono = 1000.0

    def clock(self, path: Path) -> TrustedClock:
        return TrustedClock(
            path, wall=lambda: self.wall, monotonic=lambda: self.mono, boot_id_reader=lambda: "b"
        )

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def clock(fake: FakeTime, tmp_path: Path) -> TrustedClock:
    return fake.clock(tmp_path / "clock.json")


def registry(
    clock: TrustedClock,
    storage: MemoryStorage | None = None,
    *,
    box: str = BOX,
    audit: TownAuditRecorder | None = None,
) -> ActivationRegistry:
    return ActivationRegistry(
        storage if storage is not None else MemoryStorage(),
        host_town=HOST,
        host_box=box,
        clock=clock,
        trust=TRUST.get,
        audit=audit,
    )


def activation(
    signer: ClerkKeys = DEPUTY,
    clerks: tuple[str, ...] = ("r1",),
    start: int = T0,
    hours: int = 2,
    box: str = BOX,
) -> Activation:
    return issue_activation(
        signer,
        host_town=HOST,
        host_box=box,
        clerks=clerks,
        not_before=start,
        expires_at=start + hours * HOUR,
    )


@contextlib.contextmanager
def refused(reason: Refusal) -> Iterator[None]:
    """pytest.raises(ActivationRefused) that also checks the reason and that the message
    for the clerk is Japanese."""
    with pytest.raises(ActivationRefused) as info:
        yield
    assert info.value.reason is reason, (info.value.reason, info.value.detail)
    assert any("\u3040" <= ch <= "\u9fff" for ch in str(info.value))


# ---------------------------------------------------------------------------- opening


def test_without_activation_a_visiting_clerk_cannot_open(clock: TrustedClock) -> None:
    reg = registry(clock)
    assert not reg.is_open_allowed(A, "r1")
    assert reg.grant(A, "r1") is None


def test_an_accepted_activation_opens_for_the_named_clerks_only(clock: TrustedClock) -> None:
    reg = registry(clock)
    accepted = reg.accept(activation(clerks=("r1", "r2")).to_code(), host_supervisor="host-sup")
    assert accepted.clerks == ("r1", "r2") and accepted.signers == ("rep-mayor",)
    assert accepted.ratified and accepted.accepted_by == "host-sup"
    assert reg.is_open_allowed(A, "r1") and reg.is_open_allowed(A, "r2")
    assert not reg.is_open_allowed(A, "off-roster")  # not named
    assert not reg.is_open_allowed(B, "r1")  # B's r1 is another person
    assert not reg.is_open_allowed(HOST, "r1")


def test_activation_expires_by_the_wall_clock(clock: TrustedClock, fake: FakeTime) -> None:
    reg = registry(clock)
    reg.accept(activation(hours=2), host_supervisor="host-sup")
    fake.advance(2 * HOUR - 60)
    assert reg.is_open_allowed(A, "r1")
    fake.advance(60)
    assert not reg.is_open_allowed(A, "r1")
    with refused(Refusal.EXPIRED):
        registry(clock).accept(activation(hours=2), host_supervisor="host-sup")


def test_turning_the_wall_clock_back_does_not_extend_it(
    clock: TrustedClock, fake: FakeTime, tmp_path: Path
) -> None:
    storage = MemoryStorage()
    reg = registry(clock, storage)
    record = activation(hours=2)
    fake.advance(HOUR)
    accepted = reg.accept(record, host_supervisor="host-sup")
    fake.mono += 3 * HOUR  # three hours of uptime pass…
    fake.wall = T0 + 30 * 60  # …while someone sets the wall clock back (above the floor)
    assert accepted.valid_at(fake.wall)  # by the wall clock alone it would still be open
    assert not reg.is_open_allowed(A, "r1")
    # A restart (new process, fresh monotonic clock) does not give the time back either.
    fake.mono = 5.0
    restarted = registry(fake.clock(tmp_path / "clock.json"), storage)
    assert not restarted.is_open_allowed(A, "r1")


def test_a_wall_clock_behind_a_signed_time_stops_the_box(
    clock: TrustedClock, fake: FakeTime
) -> None:
    reg = registry(clock)
    fake.advance(60)
    reg.accept(activation(), host_supervisor="host-sup")
    assert clock.floor == T0  # the activation's signed start raised the floor
    fake.wall = T0 - HOUR
    with pytest.raises(ClockBehindFloor):
        reg.is_open_allowed(A, "r1")


def test_not_yet_valid(clock: TrustedClock) -> None:
    with refused(Refusal.NOT_YET_VALID):
        registry(clock).accept(activation(start=T0 + HOUR), host_supervisor="host-sup")


def test_revocation_closes_and_overrides(clock: TrustedClock, fake: FakeTime) -> None:
    reg = registry(clock)
    record = activation()
    reg.accept(record, host_supervisor="host-sup")
    fake.advance(60)
    revocation = issue_revocation(DEPUTY, target=record.id, at=fake.wall)
    reg.revoke(revocation.to_code())
    assert not reg.is_open_allowed(A, "r1")
    assert reg.activations(A)[0].revoked
    # Arriving before the activation it names, a revocation still wins.
    other = registry(clock)
    other.revoke(revocation.to_json())
    with refused(Refusal.REVOKED):
        other.accept(record, host_supervisor="host-sup")


def test_a_revocation_needs_a_deputy(clock: TrustedClock) -> None:
    reg = registry(clock)
    record = activation()
    reg.accept(record, host_supervisor="host-sup")
    with refused(Refusal.NOT_DEPUTY):
        reg.revoke(issue_revocation(R1, target=record.id, at=T0))
    assert reg.is_open_allowed(A, "r1")


@pytest.mark.parametrize("signer", [NOT_LISTED, RANK_NO_ROLE, R1])
def test_a_code_signed_by_a_non_deputy_is_refused(clock: TrustedClock, signer: ClerkKeys) -> None:
    with refused(Refusal.NOT_DEPUTY):
        registry(clock).accept(activation(signer=signer).to_code(), host_supervisor="host-sup")


def test_a_signer_without_a_town_certificate_is_refused(clock: TrustedClock) -> None:
    stranger = ClerkKeys.generate(A, "rep-mayor")  # same login id, uncertified key
    with refused(Refusal.UNKNOWN_SIGNER):
        registry(clock).accept(activation(signer=stranger), host_supervisor="host-sup")
    forger = TownKeys.generate(A)  # a certificate signed by a key that is not the town's
    forged = issue_clerk_certificate(
        forger,
        stranger.public,
        roles=[Role.REPRESENTATIVE],
        on_roster=True,
        deputy_rank=1,
        issued_at=datetime.fromtimestamp(T0, UTC),
    )
    with refused(Refusal.UNKNOWN_SIGNER):
        accept_activation(
            activation(signer=stranger),
            host_town=HOST,
            host_box=BOX,
            now=T0,
            town_public=TOWN_KEYS[A].public,
            clerk_certs=[*CERTS[A], forged],
            host_supervisor="host-sup",
        )


def test_an_activation_for_another_box_is_refused(clock: TrustedClock) -> None:
    with refused(Refusal.WRONG_HOST):
        registry(clock).accept(activation(box="izumozaki-2").to_code(), host_supervisor="s")
    with refused(Refusal.WRONG_HOST):
        registry(clock, box="izumozaki-2").accept(activation().to_json(), host_supervisor="s")


# ---------------------------------------------------------------------------- town isolation


def test_a_clerk_of_one_town_never_gets_another_town_opened(clock: TrustedClock) -> None:
    reg = registry(clock)
    # An activation of A naming B's clerk's login id opens nothing of B.
    reg.accept(activation(clerks=("r1", "rep-b")), host_supervisor="host-sup")
    assert not reg.is_open_allowed(B, "rep-b") and not reg.is_open_allowed(B, "r1")
    # A's activation checked with B's keys and certificates: refused.
    with refused(Refusal.WRONG_TOWN):
        accept_activation(
            activation(),
            host_town=HOST,
            host_box=BOX,
            now=T0,
            town_public=TOWN_KEYS[B].public,
            clerk_certs=CERTS[B],
            host_supervisor="host-sup",
        )
    # B's deputy cannot sign an activation of A.
    forged = Activation.draft(
        stricken_town=A,
        host_town=HOST,
        host_box=BOX,
        clerks=["r1"],
        not_before=T0,
        expires_at=T0 + HOUR,
    ).signed_by(B_DEPUTY)
    with refused(Refusal.UNKNOWN_SIGNER):
        reg.accept(forged.to_code(), host_supervisor="host-sup")
    # B's own activation opens B's clerk only, never A's r1.
    reg.accept(activation(signer=B_DEPUTY), host_supervisor="host-sup")
    assert reg.is_open_allowed(B, "r1")
    assert [a.stricken_town for a in reg.activations(B)] == [B]


# ---------------------------------------------------------------------------- the offline code


def test_the_code_round_trips_and_is_short() -> None:
    record = activation(clerks=("r1", "r2"))
    code = record.to_code()
    symbols = code.replace("-", "")
    assert len(symbols) == 146  # docs/activation.md: 138 + 2 check, +6.4 a clerk
    assert all(len(g) == 4 for g in code.split("-")[:-1])
    decoded = decode_code(code)
    assert isinstance(decoded, Activation)
    assert decoded.id == record.id and decoded.signature == record.signature
    assert decoded.clerk_tags == record.clerk_tags and decoded.clerks is None
    assert (decoded.not_before, decoded.expires_at) == (record.not_before, record.expires_at)
    assert len(activation().to_code().replace("-", "")) == 140
    revocation = issue_revocation(DEPUTY, target=record.id, at=T0)
    assert len(revocation.to_code().replace("-", "")) == 133
    assert parse_record(code.lower().replace("1", "l").replace("0", "o")).id == record.id
    assert parse_record(record.to_json()) == record
    assert parse_record(decoded.to_json()) == decoded


CODE = activation(clerks=("r1", "r2")).to_code()
SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_changed_character_is_refused(data: st.DataObject) -> None:
    positions = [i for i, ch in enumerate(CODE) if ch != "-"]
    index = data.draw(st.sampled_from(positions))
    replacement = data.draw(st.sampled_from([s for s in SYMBOLS if s != CODE[index]]))
    changed = CODE[:index] + replacement + CODE[index + 1 :]
    with refused(Refusal.TYPO):  # one wrong symbol is always caught as a typo
        accept_activation(
            changed,
            host_town=HOST,
            host_box=BOX,
            now=T0,
            town_public=TOWN_KEYS[A].public,
            clerk_certs=CERTS[A],
            host_supervisor="host-sup",
        )


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_several_changed_characters_are_refused(data: st.DataObject) -> None:
    positions = [i for i, ch in enumerate(CODE) if ch != "-"]
    chosen = data.draw(st.lists(st.sampled_from(positions), min_size=2, max_size=6, unique=True))
    text = list(CODE)
    for i in chosen:
        text[i] = data.draw(st.sampled_from([s for s in SYMBOLS if s != CODE[i]]))
    with pytest.raises(ActivationRefused):
        accept_activation(
            "".join(text),
            host_town=HOST,
            host_box=BOX,
            now=T0,
            town_public=TOWN_KEYS[A].public,
            clerk_certs=CERTS[A],
            host_supervisor="host-sup",
        )


def test_editing_a_field_and_fixing_the_check_symbols_breaks_the_signature(
    clock: TrustedClock,
) -> None:
    record = decode_code(CODE)
    assert isinstance(record, Activation)
    longer = replace(record, expires_at=record.expires_at + 24 * HOUR)
    with refused(Refusal.BAD_SIGNATURE):
        registry(clock).accept(longer.to_code(), host_supervisor="host-sup")
    other_clerk = replace(record, clerks=None, clerk_tags=(record.clerk_tags[0], bytes(4)))
    with refused(Refusal.BAD_SIGNATURE):
        registry(clock).accept(other_clerk.to_code(), host_supervisor="host-sup")


def test_a_code_of_another_kind_is_not_an_activation(clock: TrustedClock) -> None:
    revocation = issue_revocation(DEPUTY, target=bytes(8), at=T0)
    with refused(Refusal.WRONG_KIND):
        registry(clock).accept(revocation.to_code(), host_supervisor="host-sup")


# ---------------------------------------------------------------------------- break-glass


def glass(hours: float = 24, signers: tuple[ClerkKeys, ...] = (SUP, R1, R2)) -> BreakGlass:
    record = BreakGlass.draft(
        stricken_town=A,
        host_town=HOST,
        host_box=BOX,
        clerks=["r1", "r2"],
        now=T0,
        hours=hours,
        reason="代表者に電話がつながらない",
    )
    for keys in signers:
        record = record.signed_by(keys)
    return record


def test_break_glass_works_once_expires_and_shows_unratified(
    clock: TrustedClock, fake: FakeTime
) -> None:
    reg = registry(clock)
    accepted = reg.accept_break_glass(glass())
    assert accepted.kind == "break_glass" and not accepted.ratified
    assert accepted.accepted_by == "host-sup"
    assert reg.is_open_allowed(A, "r1") and reg.is_open_allowed(A, "r2")
    assert [a.id for a in reg.unratified()] == [accepted.id]
    with refused(Refusal.BREAK_GLASS_USED):
        reg.accept_break_glass(glass(hours=12))
    with refused(Refusal.BREAK_GLASS_USED):  # the same record again: a replay
        reg.accept_break_glass(glass())
    fake.advance(24 * HOUR)
    assert not reg.is_open_allowed(A, "r1")
    with refused(Refusal.BREAK_GLASS_USED):  # still used up: it was never ratified
        reg.accept_break_glass(glass(hours=12).to_json())
    reg.ratify(issue_ratification(DEPUTY, target=accepted.id, at=fake.wall).to_code())
    assert reg.unratified() == [] and reg.activations(A)[0].ratified
    renewed = BreakGlass.draft(
        stricken_town=A, host_town=HOST, host_box=BOX, clerks=["r1"], now=fake.wall, hours=4
    )
    for keys in (SUP, R1, R2):
        renewed = renewed.signed_by(keys)
    assert reg.accept_break_glass(renewed).clerks == ("r1",)
    with refused(Refusal.BREAK_GLASS_USED):  # a ratified break-glass is not replayable
        reg.accept_break_glass(glass())


def test_break_glass_is_at_most_24_hours() -> None:
    with pytest.raises(ValueError):
        glass(hours=25)
    stretched = replace(glass(signers=()), expires_at=T0 + 25 * HOUR)
    for keys in (SUP, R1, R2):
        stretched = stretched.signed_by(keys)
    with refused(Refusal.TOO_LONG):
        _accept_glass(stretched)


def _accept_glass(record: BreakGlass) -> None:
    from shared.activation import accept_break_glass

    accept_break_glass(
        record, host_town=HOST, host_box=BOX, now=T0, host=TRUST[HOST], stricken=TRUST[A]
    )


@pytest.mark.parametrize(
    ("signers", "reason"),
    [
        ((R1, R2), Refusal.NOT_SUPERVISOR),
        ((HCLERK, R1, R2), Refusal.NOT_SUPERVISOR),
        ((SUP, R1), Refusal.NOT_ROSTER),
        ((SUP, R1, R1), Refusal.NOT_ROSTER),
        ((SUP, R1, OFF), Refusal.NOT_ROSTER),
        ((SUP, R1, B1), Refusal.UNKNOWN_SIGNER),
    ],
)
def test_break_glass_needs_a_host_supervisor_and_two_roster_clerks(
    signers: tuple[ClerkKeys, ...], reason: Refusal
) -> None:
    with refused(reason):
        _accept_glass(glass(signers=signers))


def test_break_glass_signatures_cover_the_whole_record() -> None:
    tampered = replace(glass(), clerks=("r1", "r2", "off-roster"))
    with refused(Refusal.BAD_SIGNATURE):
        _accept_glass(tampered)


# ---------------------------------------------------------------------------- persistence, audit


def test_the_registry_reloads_and_reverifies(clock: TrustedClock) -> None:
    storage = MemoryStorage()
    reg = registry(clock, storage)
    reg.accept(activation(clerks=("r1",)).to_code(), host_supervisor="host-sup")
    bg = reg.accept_break_glass(glass())
    reloaded = registry(clock, storage)
    assert reloaded.problems == []
    assert reloaded.is_open_allowed(A, "r1")
    assert [a.id for a in reloaded.unratified()] == [bg.id]
    # Someone edits the stored record on disk to add a clerk: it no longer verifies.
    key, raw = next(
        (k, v)
        for k, v in storage.load_range(("box", "emergency", "accepted"))
        if b"activation" in v
    )
    storage.save(key, raw.replace(b'"clerk_tags":["', b'"clerk_tags":["00000000","'))
    tampered = registry(clock, storage)
    assert len(tampered.problems) == 1
    assert [a.kind for a in tampered.activations()] == ["break_glass"]


def test_accepting_and_refusing_are_audited_in_both_towns(clock: TrustedClock) -> None:
    storage = MemoryStorage()
    box = AuditWriter.for_box(BOX, SigningKey.generate())
    publics = {t: k.public for t, k in TOWN_KEYS.items()}
    recorder = TownAuditRecorder(storage, box, publics.get, clock.now)
    reg = registry(clock, storage, audit=recorder)
    reg.accept(activation(), host_supervisor="host-sup")
    with refused(Refusal.NOT_DEPUTY):
        reg.accept(activation(signer=R1), host_supervisor="host-sup")
    writers = WriterDirectory(boxes={BOX: box.verify_key})
    for town in (A, HOST):
        report = verify_audit(storage, KeyRing(town, [TOWN_KEYS[town]]), writers, {})
        assert report.ok
        assert report.kinds == {"activation_accepted": 1, "activation_refused": 1}


# ---------------------------------------------------------------------------- 職務代理


MAYOR = Official("関 太郎", "町長", date(2024, 5, 1))


def test_an_appointment_decides_who_signs_from_its_start(clock: TrustedClock) -> None:
    storage = MemoryStorage()
    box = AuditWriter.for_box(BOX, SigningKey.generate())
    log_public = TOWN_KEYS[A].public
    recorder = TownAuditRecorder(storage, box, {A: log_public}.get, clock.now)
    offices = Appointments(storage, town=A, trust=TRUST.get, audit=recorder)
    appointment = issue_appointment(DEPUTY, name="佐藤 次郎", title="副町長", start=T0 + HOUR)
    code = appointment.to_code()
    offices.register(code)  # typed in offline, from the representative's phone
    assert offices.acting_mayor_at(T0, [MAYOR]) is not None
    before = offices.acting_mayor_at(T0 + HOUR - 1, [MAYOR])
    after = offices.acting_mayor_at(T0 + HOUR, [MAYOR])
    assert before is not None and (before.name, before.acting_for_mayor) == ("関 太郎", False)
    assert after is not None and (after.name, after.title, after.acting_for_mayor) == (
        "佐藤 次郎",
        "副町長",
        True,
    )
    offices.register(
        issue_appointment(
            DEPUTY, name="関 太郎", title="町長", start=T0 + 48 * HOUR, acting_for_mayor=False
        ).to_json()
    )
    back = Appointments(storage, town=A, trust=TRUST.get).acting_mayor_at(T0 + 49 * HOUR)
    assert back is not None and (back.name, back.acting_for_mayor) == ("関 太郎", False)
    report = verify_audit(
        storage, KeyRing(A, [TOWN_KEYS[A]]), WriterDirectory(boxes={BOX: box.verify_key}), {}
    )
    assert report.ok and report.kinds == {str(AuditKind.DEPUTY_APPOINTED): 2}


def test_only_a_representative_appoints() -> None:
    offices = Appointments(MemoryStorage(), town=A, trust=TRUST.get)
    with refused(Refusal.NOT_REPRESENTATIVE):
        offices.register(issue_appointment(R1, name="誰か", title="課長", start=T0))
    with refused(Refusal.WRONG_TOWN):
        offices.register(issue_appointment(B_DEPUTY, name="誰か", title="副村長", start=T0))
    assert offices.acting_mayor_at(T0 + HOUR) is None


def test_the_audit_log_is_the_one_the_registry_writes() -> None:
    # AuditLog is what TownAuditRecorder appends to: same chain, same head.
    storage = MemoryStorage()
    box = AuditWriter.for_box(BOX, SigningKey.generate())
    TownAuditRecorder(storage, box, {A: TOWN_KEYS[A].public}.get, lambda: float(T0)).record(
        A, AuditKind.CONFIG_CHANGE, {"setting": "x"}
    )
    head = AuditLog(storage, TOWN_KEYS[A].public).head(box.writer_id)
    assert head is not None and head.seq == 1
