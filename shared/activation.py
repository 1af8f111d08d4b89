"""Emergency access (覚書 §2, BRIEF §3 Activation) and the emergency 職務代理 appointment.

A partner town opens on a host box only under an accepted activation naming that box,
the permitted clerks and a validity window. Records, all signed by people of the towns
(never by a box or the hub):

    Activation    signed by an official on the stricken town's deputy list (a clerk
                  certificate with deputy_rank > 0 and the representative role)
    BreakGlass    when nobody on that list can be reached: a host-town supervisor and two
                  clerks of the stricken town's emergency roster, each with their own
                  key; at most 24 hours; unratified until a deputy signs a Ratification;
                  usable once per (stricken town, host box) until ratified
    Revocation    signed by a deputy; names an activation or break-glass and overrides it,
                  whenever it arrives (before or after the record it revokes)
    Ratification  signed by a deputy; names a break-glass
    Appointment   signed by a representative: who signs certificates as 職務代理者 (or,
                  with acting_for_mayor False, the mayor again) from a start time

Every record but BreakGlass travels online as JSON or offline as a short code typed or
scanned from a phone. The signature always covers the same packed binary body, so the
two forms of one record share one signature and one id. Body, MSB first:

    bits  field
    2     format version (1)
    2     kind: 0 activation, 1 revocation, 2 ratification, 3 appointment
    4     count: permitted clerks (activation, 1–15); 0 otherwise
    17    town code (5 digits as a number): the stricken / issuing town
    activation:   17 host town · 26 not-before (minutes since 2024-01-01 00:00 UTC,
                  to 2151) · 20 duration in minutes (≤ 728 days) · 32 host-box tag ·
                  24 signer tag · 32 × count clerk tags
    revocation, ratification:   26 time (minutes) · 64 target id · 24 signer tag
    appointment:  26 start (minutes) · 24 signer tag · 1 acting-for-mayor · 6 name
                  length · 6 title length · the UTF-8 name and title (≤ 63 bytes each)

    signed message = "renkei emergency record v1" 0x00 ‖ body (zero-padded to a byte)
    record id      = BLAKE2b-64(signed message)   (what revocations and ratifications name)
    tags           = BLAKE2b-32 (person "renkei-clerk"/"renkei-box") of town 0x00 login id
                     / host town 0x00 box id; signer tag = first 3 bytes of the signer's
                     key id — the verifier tries every certificate of the town that
                     matches it, so a tag collision costs one more check, nothing else.

The code is body ‖ Ed25519 signature (64 bytes), zero-padded to a multiple of 5 bits,
in Crockford base32 (0-9 A-Z without I L O U; I/L read as 1, O as 0, case ignored), plus
two check symbols (the value mod 1021 — catches every single wrong symbol and every swap
of neighbours, so a typo is reported as a typo, not as a forgery), in groups of four.
An activation for one clerk is 138 + 2 symbols, 6.4 more per extra clerk (two clerks:
146); revocations and ratifications 131 + 2. 103 of those symbols are the signature.
Crockford symbols are all QR "alphanumeric", so the code also scans compactly.

Expiry is counted in wall time against the trusted clock's floor AND in elapsed time:
the registry's effective time never goes back and advances at least with the monotonic
clock (`ClockLike.elapsed_since`), and its high-water mark is persisted, so turning the
wall clock back does not extend an activation (a restart loses at most a minute of it).

Errors:

    ActivationError
     └── ActivationRefused   `reason` (Refusal) and a Japanese message saying what to do
"""

from __future__ import annotations

import abc
import enum
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Protocol, TypeVar

import nacl.exceptions
import nacl.hash
from nacl.encoding import RawEncoder

from shared.audit import AuditKind, AuditRecorder
from shared.crypto import (
    CertificateError,
    ClerkCertificate,
    ClerkKeys,
    TownPublic,
    verify_clerk_certificate,
)
from shared.model import Official, Role
from shared.storage import Storage, StorageKey

VERSION = 1
SIGN_CONTEXT = b"renkei emergency record v1\x00"
BREAK_GLASS_CONTEXT = b"renkei break-glass v1\x00"
TIME_BASE = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
MAX_CLERKS = 15
MAX_BREAK_GLASS_SECONDS = 24 * 3600
MAX_TEXT_BYTES = 63

_TOWN_BITS, _MINUTE_BITS, _DURATION_BITS = 17, 26, 20
_BOX_TAG_BITS, _SIGNER_TAG_BITS, _CLERK_TAG_BITS, _ID_BITS = 32, 24, 32, 64
_SIGNATURE_BITS = 512
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)} | {"O": 0, "I": 1, "L": 1}
_CHECK_MODULUS = 1021
_PERSIST_EVERY = 60.0
_JST = timezone(timedelta(hours=9), "JST")


class Kind(enum.IntEnum):
    ACTIVATION = 0
    REVOCATION = 1
    RATIFICATION = 2
    APPOINTMENT = 3


# ---------------------------------------------------------------------------- refusals


class Refusal(enum.StrEnum):
    TYPO = "typo"
    MALFORMED = "malformed"
    WRONG_KIND = "wrong_kind"
    WRONG_TOWN = "wrong_town"
    WRONG_HOST = "wrong_host"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    UNKNOWN_SIGNER = "unknown_signer"
    NOT_DEPUTY = "not_deputy"
    NOT_REPRESENTATIVE = "not_representative"
    BAD_SIGNATURE = "bad_signature"
    REVOKED = "revoked"
    BREAK_GLASS_USED = "break_glass_used"
    TOO_LONG = "too_long"
    NOT_SUPERVISOR = "not_supervisor"
    NOT_ROSTER = "not_roster"


_MESSAGES: dict[Refusal, str] = {
    Refusal.TYPO: (
        "コードの入力に誤りがあります。文字を一つずつ確かめて、もう一度入力してください。"
    ),
    Refusal.MALFORMED: (
        "起動コード(または記録)の形式が正しくありません。発行した代表者に再発行を依頼してください。"
    ),
    Refusal.WRONG_KIND: "この記録は{expected}ではありません({actual})。",
    Refusal.WRONG_TOWN: (
        "この記録は{record_town}のものです。{town}の記録としては受け付けられません。"
    ),
    Refusal.WRONG_HOST: (
        "この起動は{host}向けに発行されたもので、この端末(ボックス)では使えません。"
        "発行した代表者に、この端末向けの起動を依頼してください。"
    ),
    Refusal.NOT_YET_VALID: (
        "この起動は{start}から有効です。開始時刻を過ぎてからもう一度受け付けてください。"
    ),
    Refusal.EXPIRED: (
        "この起動は有効期限({end})を過ぎています。"
        "引き続き必要なら、代行者名簿の代表者に新しい起動を依頼してください。"
    ),
    Refusal.UNKNOWN_SIGNER: (
        "署名した職員の証明書がこの端末にありません。{town}の代行者名簿の代表者が署名したか、"
        "発行元に確認してください。"
    ),
    Refusal.NOT_DEPUTY: (
        "署名した職員({login})は{town}の代行者名簿に載った代表者ではありません。"
        "代行者名簿の代表者に起動を依頼してください。"
    ),
    Refusal.NOT_REPRESENTATIVE: (
        "署名した職員({login})は{town}の代表者ではないため、職務代理者を指定できません。"
    ),
    Refusal.BAD_SIGNATURE: (
        "署名を確認できません。入力の誤りか改ざんの可能性があります。"
        "もう一度入力し、それでも通らなければ発行元に確認してください。"
    ),
    Refusal.REVOKED: "この起動は{town}の代表者によって取り消されています。",
    Refusal.BREAK_GLASS_USED: (
        "{town}のこの端末での緊急起動は、前回の分が追認されるまで再び使えません。"
        "代行者名簿の代表者に連絡し、追認または通常の起動を依頼してください。"
    ),
    Refusal.TOO_LONG: "緊急起動の有効期間は24時間以内です。期間を短くして作り直してください。",
    Refusal.NOT_SUPERVISOR: "緊急起動には、受入町の監督者の署名が必要です。",
    Refusal.NOT_ROSTER: "緊急起動には、{town}の緊急時名簿に載った職員2名の署名が必要です。",
}


class ActivationError(Exception):
    """Base of every error this module raises."""


class ActivationRefused(ActivationError):
    """A record that cannot be accepted. `str()` is the Japanese message for the host
    supervisor or the visiting clerk; `detail` is for the log."""

    def __init__(self, reason: Refusal, detail: str = "", **values: str) -> None:
        self.reason = reason
        self.detail = detail
        self.town = values.get("town", "")
        try:
            message = _MESSAGES[reason].format(**values)
        except KeyError:
            message = _MESSAGES[reason]
        super().__init__(message)


def jst(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, _JST).strftime("%Y年%m月%d日 %H:%M")


# ---------------------------------------------------------------------------- tags, bits


def _blake2b(data: bytes, size: int, person: bytes) -> bytes:
    return nacl.hash.blake2b(
        data, digest_size=size, person=person.ljust(16, b"\0"), encoder=RawEncoder
    )


def clerk_tag(town: str, login_id: str) -> bytes:
    return _blake2b(f"{town}\0{login_id}".encode(), 4, b"renkei-clerk")


def box_tag(town: str, box_id: str) -> bytes:
    return _blake2b(f"{town}\0{box_id}".encode(), 4, b"renkei-box")


def _town_number(town: str) -> int:
    if not (isinstance(town, str) and len(town) == 5 and town.isascii() and town.isdigit()):
        raise ValueError(f"town code must be 5 digits, not {town!r}")
    return int(town)


def _minutes(seconds: int) -> int:
    if seconds % 60:
        raise ValueError("record times are whole minutes")
    value = (seconds - TIME_BASE) // 60
    if not 0 <= value < 1 << _MINUTE_BITS:
        raise ValueError("time outside 2024-01-01 … 2151")
    return value


def _floor_minute(seconds: float) -> int:
    return int(seconds // 60) * 60


class _Bits:
    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, value: int, width: int) -> None:
        if not 0 <= value < 1 << width:
            raise ValueError(f"{value} does not fit in {width} bits")
        self.value = (self.value << width) | value
        self.length += width

    def put_bytes(self, data: bytes) -> None:
        self.put(int.from_bytes(data, "big"), 8 * len(data))

    def to_bytes(self) -> bytes:
        pad = -self.length % 8
        return (self.value << pad).to_bytes((self.length + pad) // 8, "big")


class _Reader:
    def __init__(self, value: int, length: int) -> None:
        self.value = value
        self.length = length
        self.pos = 0

    def take(self, width: int) -> int:
        if self.pos + width > self.length:
            raise ActivationRefused(Refusal.MALFORMED, "code too short")
        self.pos += width
        return (self.value >> (self.length - self.pos)) & ((1 << width) - 1)

    def take_bytes(self, size: int) -> bytes:
        return self.take(8 * size).to_bytes(size, "big")


def _encode(bits: _Bits) -> str:
    pad = -bits.length % 5
    value = bits.value << pad
    count = (bits.length + pad) // 5
    symbols = [_ALPHABET[(value >> (5 * (count - 1 - i))) & 31] for i in range(count)]
    check = value % _CHECK_MODULUS
    symbols += [_ALPHABET[check >> 5], _ALPHABET[check & 31]]
    text = "".join(symbols)
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def _decode(code: str) -> _Reader:
    text = "".join(code.split()).replace("-", "").upper()
    if len(text) < 3:
        raise ActivationRefused(Refusal.MALFORMED, "code too short")
    values = []
    for char in text:
        if char not in _DECODE:
            raise ActivationRefused(Refusal.TYPO, f"character {char!r} is not Crockford base32")
        values.append(_DECODE[char])
    value = 0
    for v in values[:-2]:
        value = (value << 5) | v
    if value % _CHECK_MODULUS != (values[-2] << 5) | values[-1]:
        raise ActivationRefused(Refusal.TYPO, "check symbols do not match")
    return _Reader(value, 5 * (len(values) - 2))


def _finish(reader: _Reader) -> None:
    rest = reader.length - reader.pos
    if rest >= 5 or reader.take(rest) != 0:
        raise ActivationRefused(Refusal.MALFORMED, "code has trailing data")


def _header(bits: _Bits, kind: Kind, count: int = 0) -> None:
    bits.put(VERSION, 2)
    bits.put(int(kind), 2)
    bits.put(count, 4)


def _signer_tag(key_id_hex: str) -> bytes:
    return bytes.fromhex(key_id_hex)[: _SIGNER_TAG_BITS // 8]


# ---------------------------------------------------------------------------- records


class _Record(abc.ABC):
    """What the compact records share: a packed body, a signer and a signature."""

    KIND: ClassVar[Kind]
    NAME: ClassVar[str]
    LABEL: ClassVar[str]
    signer_tag: bytes
    signer_key_id: str | None
    signature: bytes

    @property
    @abc.abstractmethod
    def town(self) -> str: ...

    @abc.abstractmethod
    def _pack(self, bits: _Bits) -> None: ...

    def body(self) -> bytes:
        bits = _Bits()
        self._pack(bits)
        return bits.to_bytes()

    def signed_message(self) -> bytes:
        return SIGN_CONTEXT + self.body()

    @property
    def id(self) -> bytes:
        return _blake2b(self.signed_message(), _ID_BITS // 8, b"renkei-record")

    def to_code(self) -> str:
        if len(self.signature) != 64:
            raise ValueError("an unsigned record has no code")
        bits = _Bits()
        self._pack(bits)
        bits.put_bytes(self.signature)
        return _encode(bits)

    def _signer_json(self) -> dict[str, Any]:
        signer: dict[str, Any] = (
            {"signer": self.signer_key_id}
            if self.signer_key_id
            else {"signer_tag": self.signer_tag.hex()}
        )
        return dict(
            signer, type=self.NAME, v=VERSION, id=self.id.hex(), signature=self.signature.hex()
        )


def _sign(record: Any, keys: ClerkKeys) -> Any:
    kid = keys.public.key_id
    unsigned = replace(record, signer_tag=_signer_tag(kid), signer_key_id=kid, signature=b"")
    return replace(unsigned, signature=keys.signing_key.sign(unsigned.signed_message()).signature)


@dataclass(frozen=True, slots=True)
class Activation(_Record):
    """覚書 §2: the stricken town opens on one host box, for the named clerks, for a while.
    Decoded from a code, `host_box` and `clerks` are unknown (None): only their tags."""

    KIND: ClassVar[Kind] = Kind.ACTIVATION
    NAME: ClassVar[str] = "activation"
    LABEL: ClassVar[str] = "連携起動"

    stricken_town: str
    host_town: str
    host_box: str | None
    host_box_tag: bytes
    clerks: tuple[str, ...] | None
    clerk_tags: tuple[bytes, ...]
    not_before: int  # UTC seconds, whole minutes
    expires_at: int
    signer_tag: bytes = b""
    signer_key_id: str | None = None
    signature: bytes = b""

    @classmethod
    def draft(
        cls,
        *,
        stricken_town: str,
        host_town: str,
        host_box: str,
        clerks: Sequence[str],
        not_before: float,
        expires_at: float,
    ) -> Activation:
        if not 1 <= len(clerks) <= MAX_CLERKS or len(set(clerks)) != len(clerks):
            raise ValueError(f"an activation names 1–{MAX_CLERKS} distinct clerks")
        start, end = _floor_minute(not_before), _floor_minute(expires_at)
        if end <= start:
            raise ValueError("an activation must expire after it starts")
        record = cls(
            stricken_town=stricken_town,
            host_town=host_town,
            host_box=host_box,
            host_box_tag=box_tag(host_town, host_box),
            clerks=tuple(clerks),
            clerk_tags=tuple(clerk_tag(stricken_town, c) for c in clerks),
            not_before=start,
            expires_at=end,
        )
        record.body()  # every field must pack
        return record

    @property
    def town(self) -> str:
        return self.stricken_town

    def _pack(self, bits: _Bits) -> None:
        _header(bits, self.KIND, len(self.clerk_tags))
        bits.put(_town_number(self.stricken_town), _TOWN_BITS)
        bits.put(_town_number(self.host_town), _TOWN_BITS)
        bits.put(_minutes(self.not_before), _MINUTE_BITS)
        bits.put((self.expires_at - self.not_before) // 60, _DURATION_BITS)
        bits.put_bytes(self.host_box_tag)
        bits.put_bytes(self.signer_tag or bytes(3))
        for tag in self.clerk_tags:
            bits.put_bytes(tag)

    @classmethod
    def _unpack(cls, reader: _Reader, count: int) -> Activation:
        if not 1 <= count <= MAX_CLERKS:
            raise ActivationRefused(Refusal.MALFORMED, "activation names no clerk")
        stricken = f"{reader.take(_TOWN_BITS):05d}"
        host = f"{reader.take(_TOWN_BITS):05d}"
        start = TIME_BASE + 60 * reader.take(_MINUTE_BITS)
        duration = 60 * reader.take(_DURATION_BITS)
        box = reader.take_bytes(4)
        signer = reader.take_bytes(3)
        tags = tuple(reader.take_bytes(4) for _ in range(count))
        if duration == 0:
            raise ActivationRefused(Refusal.MALFORMED, "activation of zero duration")
        return cls(stricken, host, None, box, None, tags, start, start + duration, signer)

    def to_json(self) -> dict[str, Any]:
        data = self._signer_json()
        data.update(
            stricken_town=self.stricken_town,
            host_town=self.host_town,
            not_before=self.not_before,
            expires_at=self.expires_at,
        )
        if self.host_box is not None:
            data["host_box"] = self.host_box
        else:
            data["host_box_tag"] = self.host_box_tag.hex()
        if self.clerks is not None:
            data["clerks"] = list(self.clerks)
        else:
            data["clerk_tags"] = [t.hex() for t in self.clerk_tags]
        return data

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> Activation:
        stricken, host = str(data["stricken_town"]), str(data["host_town"])
        host_box = data.get("host_box")
        clerks = data.get("clerks")
        record = cls(
            stricken_town=stricken,
            host_town=host,
            host_box=None if host_box is None else str(host_box),
            host_box_tag=(
                box_tag(host, str(host_box))
                if host_box is not None
                else bytes.fromhex(data["host_box_tag"])
            ),
            clerks=None if clerks is None else tuple(str(c) for c in clerks),
            clerk_tags=tuple(clerk_tag(stricken, str(c)) for c in clerks)
            if clerks is not None
            else tuple(bytes.fromhex(t) for t in data["clerk_tags"]),
            not_before=_int(data["not_before"]),
            expires_at=_int(data["expires_at"]),
            **_signer_fields(data),
        )
        if not 1 <= len(record.clerk_tags) <= MAX_CLERKS or record.expires_at <= record.not_before:
            raise ValueError("activation clerks or times out of range")
        return record

    def signed_by(self, keys: ClerkKeys) -> Activation:
        result: Activation = _sign(self, keys)
        return result


@dataclass(frozen=True, slots=True)
class _TargetRecord(_Record):
    issuing_town: str
    target: bytes  # id of the activation or break-glass
    at: int  # UTC seconds, whole minutes
    signer_tag: bytes = b""
    signer_key_id: str | None = None
    signature: bytes = b""

    @property
    def town(self) -> str:
        return self.issuing_town

    def _pack(self, bits: _Bits) -> None:
        _header(bits, self.KIND)
        bits.put(_town_number(self.issuing_town), _TOWN_BITS)
        bits.put(_minutes(self.at), _MINUTE_BITS)
        bits.put_bytes(self.target)
        bits.put_bytes(self.signer_tag or bytes(3))

    def to_json(self) -> dict[str, Any]:
        return dict(
            self._signer_json(), town=self.issuing_town, target=self.target.hex(), at=self.at
        )


@dataclass(frozen=True, slots=True)
class Revocation(_TargetRecord):
    """A deputy ends an activation or break-glass; it overrides it wherever it arrives."""

    KIND: ClassVar[Kind] = Kind.REVOCATION
    NAME: ClassVar[str] = "revocation"
    LABEL: ClassVar[str] = "起動の取消"

    def signed_by(self, keys: ClerkKeys) -> Revocation:
        result: Revocation = _sign(self, keys)
        return result


@dataclass(frozen=True, slots=True)
class Ratification(_TargetRecord):
    """A deputy confirms a break-glass after the fact."""

    KIND: ClassVar[Kind] = Kind.RATIFICATION
    NAME: ClassVar[str] = "ratification"
    LABEL: ClassVar[str] = "緊急起動の追認"

    def signed_by(self, keys: ClerkKeys) -> Ratification:
        result: Ratification = _sign(self, keys)
        return result


_T = TypeVar("_T", Revocation, Ratification)


@dataclass(frozen=True, slots=True)
class Appointment(_Record):
    """A representative names who signs certificates from `start`: a 職務代理者
    (acting_for_mayor) or, to end the 職務代理, the mayor."""

    KIND: ClassVar[Kind] = Kind.APPOINTMENT
    NAME: ClassVar[str] = "appointment"
    LABEL: ClassVar[str] = "職務代理者の指定"

    issuing_town: str
    name: str
    title: str
    acting_for_mayor: bool
    start: int  # UTC seconds, whole minutes
    signer_tag: bytes = b""
    signer_key_id: str | None = None
    signature: bytes = b""

    @property
    def town(self) -> str:
        return self.issuing_town

    def _pack(self, bits: _Bits) -> None:
        name, title = self.name.encode(), self.title.encode()
        if not (1 <= len(name) <= MAX_TEXT_BYTES and 1 <= len(title) <= MAX_TEXT_BYTES):
            raise ValueError(f"name and title must be 1–{MAX_TEXT_BYTES} UTF-8 bytes")
        _header(bits, self.KIND)
        bits.put(_town_number(self.issuing_town), _TOWN_BITS)
        bits.put(_minutes(self.start), _MINUTE_BITS)
        bits.put_bytes(self.signer_tag or bytes(3))
        bits.put(int(self.acting_for_mayor), 1)
        bits.put(len(name), 6)
        bits.put(len(title), 6)
        bits.put_bytes(name + title)

    def to_json(self) -> dict[str, Any]:
        return dict(
            self._signer_json(),
            town=self.issuing_town,
            name=self.name,
            title=self.title,
            acting_for_mayor=self.acting_for_mayor,
            start=self.start,
        )

    def signed_by(self, keys: ClerkKeys) -> Appointment:
        result: Appointment = _sign(self, keys)
        return result


CompactRecord = Activation | Revocation | Ratification | Appointment


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("expected an integer")
    return value


def _signer_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    signature = bytes.fromhex(data["signature"])
    if len(signature) != 64:
        raise ValueError("signature must be 64 bytes")
    if "signer" in data:
        kid = str(data["signer"])
        if len(bytes.fromhex(kid)) != 16:
            raise ValueError("signer key id must be 16 bytes")
        return {"signer_tag": _signer_tag(kid), "signer_key_id": kid, "signature": signature}
    tag = bytes.fromhex(data["signer_tag"])
    if len(tag) != 3:
        raise ValueError("signer tag must be 3 bytes")
    return {"signer_tag": tag, "signer_key_id": None, "signature": signature}


def decode_code(code: str) -> CompactRecord:
    """A record from its offline code. Refusal.TYPO for a mistyped symbol."""
    reader = _decode(code)
    if reader.take(2) != VERSION:
        raise ActivationRefused(Refusal.MALFORMED, "unknown code version")
    kind = Kind(reader.take(2))
    count = reader.take(4)
    record: CompactRecord
    if kind is Kind.ACTIVATION:
        record = Activation._unpack(reader, count)
    elif count != 0:
        raise ActivationRefused(Refusal.MALFORMED, "count must be 0")
    elif kind is Kind.APPOINTMENT:
        town = f"{reader.take(_TOWN_BITS):05d}"
        start = TIME_BASE + 60 * reader.take(_MINUTE_BITS)
        signer = reader.take_bytes(3)
        acting = bool(reader.take(1))
        name_len, title_len = reader.take(6), reader.take(6)
        try:
            name = reader.take_bytes(name_len).decode()
            title = reader.take_bytes(title_len).decode()
        except UnicodeDecodeError as exc:
            raise ActivationRefused(Refusal.MALFORMED, "name is not UTF-8") from exc
        record = Appointment(town, name, title, acting, start, signer)
    else:
        town = f"{reader.take(_TOWN_BITS):05d}"
        at = TIME_BASE + 60 * reader.take(_MINUTE_BITS)
        target = reader.take_bytes(_ID_BITS // 8)
        signer = reader.take_bytes(3)
        cls = Revocation if kind is Kind.REVOCATION else Ratification
        record = cls(town, target, at, signer)
    signature = reader.take_bytes(64)
    _finish(reader)
    return replace(record, signature=signature)


def parse_record(value: str | Mapping[str, Any] | CompactRecord | BreakGlass) -> Any:
    """A record from a code, a JSON text or object, or the record itself."""
    if isinstance(value, Activation | Revocation | Ratification | Appointment | BreakGlass):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            return decode_code(text)
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ActivationRefused(Refusal.MALFORMED, "not JSON") from exc
    if not isinstance(value, Mapping):
        raise ActivationRefused(Refusal.MALFORMED, "not a record")
    kind = value.get("type")
    try:
        record: Any
        if kind == "activation":
            record = Activation._from_json(value)
        elif kind in ("revocation", "ratification"):
            cls = Revocation if kind == "revocation" else Ratification
            record = cls(
                str(value["town"]),
                bytes.fromhex(value["target"]),
                _int(value["at"]),
                **_signer_fields(value),
            )
            if len(record.target) != 8:
                raise ValueError("target id must be 8 bytes")
        elif kind == "appointment":
            record = Appointment(
                str(value["town"]),
                str(value["name"]),
                str(value["title"]),
                bool(value["acting_for_mayor"]),
                _int(value["start"]),
                **_signer_fields(value),
            )
        elif kind == "break_glass":
            record = BreakGlass.from_json(value)
        else:
            raise ValueError(f"unknown record type {kind!r}")
        if not isinstance(record, BreakGlass):
            record.body()  # every field must pack, as the signature covers the body
            if "id" in value and value["id"] != record.id.hex():
                raise ValueError("id does not match the record")
    except (KeyError, TypeError, ValueError) as exc:
        raise ActivationRefused(Refusal.MALFORMED, f"{type(exc).__name__}: {exc}") from exc
    return record


# ---------------------------------------------------------------------------- issuing


def issue_activation(
    signer: ClerkKeys,
    *,
    host_town: str,
    host_box: str,
    clerks: Sequence[str],
    not_before: float,
    expires_at: float,
) -> Activation:
    """A deputy of the signer's town activates it on one host box (times: UTC seconds,
    rounded down to the minute)."""
    return Activation.draft(
        stricken_town=signer.town,
        host_town=host_town,
        host_box=host_box,
        clerks=clerks,
        not_before=not_before,
        expires_at=expires_at,
    ).signed_by(signer)


def issue_revocation(signer: ClerkKeys, *, target: bytes, at: float) -> Revocation:
    return Revocation(signer.town, target, _floor_minute(at)).signed_by(signer)


def issue_ratification(signer: ClerkKeys, *, target: bytes, at: float) -> Ratification:
    return Ratification(signer.town, target, _floor_minute(at)).signed_by(signer)


def issue_appointment(
    signer: ClerkKeys, *, name: str, title: str, start: float, acting_for_mayor: bool = True
) -> Appointment:
    record = Appointment(signer.town, name, title, acting_for_mayor, _floor_minute(start))
    record.body()
    return record.signed_by(signer)


# ---------------------------------------------------------------------------- break-glass


@dataclass(frozen=True, slots=True)
class GlassSignature:
    town: str
    login_id: str
    key_id: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """Emergency access when no deputy can be reached, signed on the host box by a host
    supervisor and two roster clerks of the stricken town (each signs the same body)."""

    stricken_town: str
    host_town: str
    host_box: str
    clerks: tuple[str, ...]
    not_before: int  # UTC seconds
    expires_at: int
    reason: str
    signatures: tuple[GlassSignature, ...] = ()

    @classmethod
    def draft(
        cls,
        *,
        stricken_town: str,
        host_town: str,
        host_box: str,
        clerks: Sequence[str],
        now: float,
        hours: float = 24,
        reason: str = "",
    ) -> BreakGlass:
        start = int(now)
        if not 0 < hours * 3600 <= MAX_BREAK_GLASS_SECONDS:
            raise ValueError("a break-glass lasts at most 24 hours")
        if not clerks:
            raise ValueError("a break-glass names at least one clerk")
        return cls(
            stricken_town,
            host_town,
            host_box,
            tuple(clerks),
            start,
            start + round(hours * 3600),
            reason,
        )

    def _body(self) -> dict[str, Any]:
        return {
            "type": "break_glass",
            "v": VERSION,
            "stricken_town": self.stricken_town,
            "host_town": self.host_town,
            "host_box": self.host_box,
            "clerks": list(self.clerks),
            "not_before": self.not_before,
            "expires_at": self.expires_at,
            "reason": self.reason,
        }

    def signed_message(self) -> bytes:
        return BREAK_GLASS_CONTEXT + _canonical(self._body())

    @property
    def id(self) -> bytes:
        return _blake2b(self.signed_message(), _ID_BITS // 8, b"renkei-record")

    def signed_by(self, keys: ClerkKeys) -> BreakGlass:
        signature = GlassSignature(
            keys.town,
            keys.login_id,
            keys.public.key_id,
            keys.signing_key.sign(self.signed_message()).signature,
        )
        return replace(self, signatures=(*self.signatures, signature))

    def to_json(self) -> dict[str, Any]:
        return dict(
            self._body(),
            id=self.id.hex(),
            signatures=[
                {
                    "town": s.town,
                    "login_id": s.login_id,
                    "key_id": s.key_id,
                    "signature": s.signature.hex(),
                }
                for s in self.signatures
            ],
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BreakGlass:
        record = cls(
            str(data["stricken_town"]),
            str(data["host_town"]),
            str(data["host_box"]),
            tuple(str(c) for c in data["clerks"]),
            _int(data["not_before"]),
            _int(data["expires_at"]),
            str(data.get("reason", "")),
            tuple(
                GlassSignature(
                    str(s["town"]),
                    str(s["login_id"]),
                    str(s["key_id"]),
                    bytes.fromhex(s["signature"]),
                )
                for s in data["signatures"]
            ),
        )
        if "id" in data and data["id"] != record.id.hex():
            raise ValueError("id does not match the record")
        return record


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class TownTrust:
    """What a box knows of a town: its public keys (every epoch it has) and the town-signed
    certificates of its clerks it holds. Certificates are checked here, not trusted."""

    town: str
    publics: tuple[TownPublic, ...]
    clerks: tuple[ClerkCertificate, ...] = ()

    @classmethod
    def of(
        cls, publics: TownPublic | Iterable[TownPublic], clerks: Iterable[ClerkCertificate] = ()
    ) -> TownTrust:
        keys = (publics,) if isinstance(publics, TownPublic) else tuple(publics)
        if not keys or len({k.town for k in keys}) != 1:
            raise ValueError("TownTrust needs the public keys of exactly one town")
        return cls(keys[0].town, keys, tuple(clerks))

    def certified(self, cert: ClerkCertificate) -> bool:
        for public in self.publics:
            if public.epoch == cert.epoch:
                try:
                    verify_clerk_certificate(cert, public)
                except CertificateError:
                    return False
                return True
        return False


def _verify_signer(
    record: CompactRecord,
    trust: TownTrust,
    allowed: Callable[[ClerkCertificate], bool],
    refusal: Refusal,
) -> ClerkCertificate:
    town = record.town
    if trust.town != town:
        raise ActivationRefused(
            Refusal.WRONG_TOWN,
            f"{record.NAME} of {town} checked with {trust.town}'s keys",
            record_town=town,
            town=trust.town,
        )
    tag = record.signer_tag.hex()
    candidates = [
        c
        for c in trust.clerks
        if c.town == town
        and c.key_id.startswith(tag)
        and (record.signer_key_id is None or c.key_id == record.signer_key_id)
        and trust.certified(c)
    ]
    if not candidates:
        raise ActivationRefused(Refusal.UNKNOWN_SIGNER, f"no certificate for tag {tag}", town=town)
    message = record.signed_message()
    for cert in candidates:
        try:
            cert.verify_key.verify(message, record.signature)
        except nacl.exceptions.BadSignatureError:
            continue
        if not allowed(cert):
            raise ActivationRefused(
                refusal, f"signer {cert.login_id}", login=cert.login_id, town=town
            )
        return cert
    raise ActivationRefused(Refusal.BAD_SIGNATURE, f"{record.NAME} signature", town=town)


def is_deputy(cert: ClerkCertificate) -> bool:
    return cert.deputy_rank > 0 and Role.REPRESENTATIVE in cert.roles


def is_representative(cert: ClerkCertificate) -> bool:
    return Role.REPRESENTATIVE in cert.roles


def _expect(record: Any, cls: type, expected: str) -> None:
    if not isinstance(record, cls):
        actual = getattr(record, "LABEL", "緊急起動" if isinstance(record, BreakGlass) else "?")
        raise ActivationRefused(
            Refusal.WRONG_KIND, f"expected {cls.__name__}", expected=expected, actual=actual
        )


@dataclass(frozen=True, slots=True)
class AcceptedActivation:
    """An activation or break-glass the host accepted: what `is_open_allowed` consults."""

    id: bytes
    kind: str  # "activation" | "break_glass"
    stricken_town: str
    host_town: str
    host_box: str
    clerks: tuple[str, ...]  # login ids resolved from the named clerks or their tags
    clerk_tags: frozenset[bytes]
    not_before: float
    expires_at: float
    accepted_at: float
    accepted_by: str  # the host supervisor
    signers: tuple[str, ...]
    unresolved: int = 0  # clerk tags matching no certificate on this box (yet)
    ratified: bool = True  # False for a break-glass until a deputy ratifies it
    revoked: bool = False
    record: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def names(self, town: str, login_id: str) -> bool:
        return town == self.stricken_town and clerk_tag(town, login_id) in self.clerk_tags

    def valid_at(self, moment: float) -> bool:
        return not self.revoked and self.not_before <= moment < self.expires_at

    def audit_details(self) -> dict[str, Any]:
        return {
            "record": self.id.hex(),
            "type": self.kind,
            "stricken_town": self.stricken_town,
            "host_town": self.host_town,
            "host_box": self.host_box,
            "clerks": list(self.clerks),
            "unresolved_clerks": self.unresolved,
            "not_before": self.not_before,
            "expires_at": self.expires_at,
            "signers": list(self.signers),
            "accepted_by": self.accepted_by,
            "ratified": self.ratified,
        }


def _check_window(start: float, end: float, now: float, town: str) -> None:
    if now < start:
        raise ActivationRefused(
            Refusal.NOT_YET_VALID, f"starts {start}", start=jst(start), town=town
        )
    if now >= end:
        raise ActivationRefused(Refusal.EXPIRED, f"expired {end}", end=jst(end), town=town)


def accept_activation(
    code_or_record: str | Mapping[str, Any] | Activation,
    *,
    host_town: str,
    host_box: str,
    now: float,
    town_public: TownPublic | Iterable[TownPublic],
    clerk_certs: Iterable[ClerkCertificate],
    host_supervisor: str,
    revoked: Iterable[bytes] = (),
) -> AcceptedActivation:
    """Check an activation for this host box at `now` (the registry's effective time):
    signed by a deputy of the stricken town, naming this box, not revoked, in its window.
    Raises ActivationRefused with the reason; returns what the registry stores."""
    record = parse_record(code_or_record)
    _expect(record, Activation, "連携起動")
    certs = list(clerk_certs)
    trust = TownTrust.of(town_public, certs)
    signer = _verify_signer(record, trust, is_deputy, Refusal.NOT_DEPUTY)
    if record.host_town != host_town or record.host_box_tag != box_tag(host_town, host_box):
        where = record.host_town + (f" の {record.host_box}" if record.host_box else " の別の端末")
        raise ActivationRefused(
            Refusal.WRONG_HOST,
            f"for {record.host_town}/{record.host_box}",
            host=where,
            town=record.town,
        )
    if record.id in set(revoked):
        raise ActivationRefused(Refusal.REVOKED, record.id.hex(), town=record.town)
    _check_window(record.not_before, record.expires_at, now, record.town)
    resolved, unresolved = _resolve(record.stricken_town, record.clerk_tags, certs, trust)
    return AcceptedActivation(
        id=record.id,
        kind="activation",
        stricken_town=record.stricken_town,
        host_town=host_town,
        host_box=host_box,
        clerks=record.clerks if record.clerks is not None else resolved,
        clerk_tags=frozenset(record.clerk_tags),
        not_before=record.not_before,
        expires_at=record.expires_at,
        accepted_at=now,
        accepted_by=host_supervisor,
        signers=(signer.login_id,),
        unresolved=0 if record.clerks is not None else unresolved,
        record=record.to_json(),
    )


def _resolve(
    town: str, tags: Iterable[bytes], certs: Iterable[ClerkCertificate], trust: TownTrust
) -> tuple[tuple[str, ...], int]:
    by_tag: dict[bytes, set[str]] = {}
    for cert in certs:
        if cert.town == town and trust.certified(cert):
            by_tag.setdefault(clerk_tag(town, cert.login_id), set()).add(cert.login_id)
    names: list[str] = []
    missing = 0
    for tag in tags:
        found = by_tag.get(tag)
        if found:
            names.extend(sorted(found))
        else:
            missing += 1
    return tuple(names), missing


def accept_break_glass(
    record: BreakGlass | Mapping[str, Any] | str,
    *,
    host_town: str,
    host_box: str,
    now: float,
    host: TownTrust,
    stricken: TownTrust,
    used: bool = False,
) -> AcceptedActivation:
    """Check a break-glass: a supervisor of the host town and two distinct roster clerks
    of the stricken town signed it, it names this box, lasts ≤ 24 h and is in its window.
    `used`: an unratified break-glass already exists for (stricken town, this box)."""
    bg = parse_record(record)
    _expect(bg, BreakGlass, "緊急起動")
    town = bg.stricken_town
    if stricken.town != town or host.town != host_town:
        raise ActivationRefused(
            Refusal.WRONG_TOWN,
            "break-glass trust of other towns",
            record_town=town,
            town=stricken.town,
        )
    if bg.host_town != host_town or bg.host_box != host_box:
        raise ActivationRefused(
            Refusal.WRONG_HOST,
            "break-glass for another box",
            host=f"{bg.host_town} の {bg.host_box}",
            town=town,
        )
    if bg.expires_at - bg.not_before > MAX_BREAK_GLASS_SECONDS:
        raise ActivationRefused(Refusal.TOO_LONG, "longer than 24 h", town=town)
    if not bg.clerks or bg.expires_at <= bg.not_before:
        raise ActivationRefused(Refusal.MALFORMED, "no clerks or empty window", town=town)
    message = bg.signed_message()
    supervisors: set[str] = set()
    roster: set[str] = set()
    for sig in bg.signatures:
        trust = host if sig.town == host_town else stricken if sig.town == town else None
        cert = next(
            (
                c
                for c in (trust.clerks if trust else ())
                if c.town == sig.town and c.login_id == sig.login_id and c.key_id == sig.key_id
            ),
            None,
        )
        if trust is None or cert is None or not trust.certified(cert):
            raise ActivationRefused(Refusal.UNKNOWN_SIGNER, f"signer {sig.login_id}", town=sig.town)
        try:
            cert.verify_key.verify(message, sig.signature)
        except nacl.exceptions.BadSignatureError as exc:
            raise ActivationRefused(
                Refusal.BAD_SIGNATURE, f"signer {sig.login_id}", town=sig.town
            ) from exc
        if sig.town == host_town and Role.SUPERVISOR in cert.roles:
            supervisors.add(sig.login_id)
        if sig.town == town and cert.on_roster:
            roster.add(sig.login_id)
    if not supervisors:
        raise ActivationRefused(Refusal.NOT_SUPERVISOR, "no host supervisor", town=town)
    if len(roster) < 2:
        raise ActivationRefused(Refusal.NOT_ROSTER, f"{len(roster)} roster clerks", town=town)
    if used:
        raise ActivationRefused(Refusal.BREAK_GLASS_USED, "unratified break-glass", town=town)
    _check_window(bg.not_before, bg.expires_at, now, town)
    return AcceptedActivation(
        id=bg.id,
        kind="break_glass",
        stricken_town=town,
        host_town=host_town,
        host_box=host_box,
        clerks=bg.clerks,
        clerk_tags=frozenset(clerk_tag(town, c) for c in bg.clerks),
        not_before=bg.not_before,
        expires_at=bg.expires_at,
        accepted_at=now,
        accepted_by=sorted(supervisors)[0],
        signers=tuple(s.login_id for s in bg.signatures),
        ratified=False,
        record=bg.to_json(),
    )


def verify_deputy_record(record: Any, cls: type, trust: TownTrust) -> tuple[Any, ClerkCertificate]:
    """A revocation or ratification signed by a deputy of its town."""
    parsed = parse_record(record)
    _expect(parsed, cls, getattr(cls, "LABEL", cls.__name__))
    return parsed, _verify_signer(parsed, trust, is_deputy, Refusal.NOT_DEPUTY)


# ---------------------------------------------------------------------------- registry


class ClockLike(Protocol):
    """What the registry needs of `shared.clock.TrustedClock`."""

    def now(self) -> float: ...

    def mark(self) -> float: ...

    def elapsed_since(self, mark: float) -> float: ...

    def observe_signed_time(self, ts: float) -> None: ...


TrustLookup = Callable[[str], TownTrust | None]


class _EffectiveClock:
    """Time that never goes back: max(wall, last effective time + elapsed uptime). The
    high-water mark is persisted (at most once a minute) so a restart keeps it."""

    def __init__(self, clock: ClockLike, storage: Storage, key: StorageKey) -> None:
        self._clock = clock
        self._storage = storage
        self._key = key
        raw = storage.load(key)
        self._high: float | None = None if raw is None else float(json.loads(raw)["high_water"])
        self._saved = self._high
        self._mark = clock.mark()
        self._lock = threading.Lock()

    def now(self, wall: float | None = None) -> float:
        wall = self._clock.now() if wall is None else wall
        if not math.isfinite(wall):
            raise ValueError("time must be finite")
        with self._lock:
            value = wall
            if self._high is not None:
                value = max(wall, self._high + self._clock.elapsed_since(self._mark))
            self._high, self._mark = value, self._clock.mark()
            if self._saved is None or value >= self._saved + _PERSIST_EVERY:
                self._storage.save(self._key, json.dumps({"high_water": value}).encode())
                self._saved = value
            return value


class ActivationRegistry:
    """A host box's accepted activations, break-glasses, revocations and ratifications,
    through the storage seam (cleartext: they hold no personal data, and the box must
    read them while every partner town is sealed). Each stored record is re-verified
    when the registry loads; one that no longer verifies is ignored and listed in
    `problems`. Accepting, refusing, revoking and ratifying are written to the audit of
    the stricken town and of the host town when an `audit` recorder is given.

        (*prefix, "accepted", id)        {"record": …, "accepted_at", "accepted_by"}
        (*prefix, "revocation", target)  the revocation record (JSON)
        (*prefix, "ratification", target)
        (*prefix, "clock")               the effective clock's high-water mark
    """

    def __init__(
        self,
        storage: Storage,
        *,
        host_town: str,
        host_box: str,
        clock: ClockLike,
        trust: TrustLookup,
        audit: AuditRecorder | None = None,
        prefix: StorageKey = ("box", "emergency"),
    ) -> None:
        self.storage = storage
        self.host_town = host_town
        self.host_box = host_box
        self._clock = clock
        self._trust = trust
        self._audit = audit
        self._prefix = prefix
        self._effective = _EffectiveClock(clock, storage, (*prefix, "clock"))
        self._lock = threading.RLock()
        self._accepted: dict[bytes, AcceptedActivation] = {}
        self._revoked: dict[bytes, Revocation] = {}
        self._ratified: dict[bytes, Ratification] = {}
        self.problems: list[str] = []
        self._load()

    # ------------------------------------------------------------------ time

    def effective_now(self, now: float | None = None) -> float:
        """The time expiry is judged by: never earlier than before, nor than `now`."""
        return self._effective.now(now)

    # ------------------------------------------------------------------ accepting

    def accept(
        self,
        code_or_record: str | Mapping[str, Any] | Activation,
        *,
        host_supervisor: str,
        now: float | None = None,
    ) -> AcceptedActivation:
        """A host supervisor accepts a deputy's activation (typed, scanned or online)."""
        moment = self.effective_now(now)
        accepted = self.check(code_or_record, host_supervisor=host_supervisor, now=moment)
        with self._lock:
            existing = self._accepted.get(accepted.id)
            if existing is not None:
                return self._view(existing)
            self._log(
                accepted.stricken_town, AuditKind.ACTIVATION_ACCEPTED, accepted.audit_details()
            )
            self._store_accepted(accepted)
            self._observe(accepted.not_before, moment)
            return self._view(accepted)

    def check(
        self,
        code_or_record: str | Mapping[str, Any] | Activation,
        *,
        host_supervisor: str = "",
        now: float | None = None,
    ) -> AcceptedActivation:
        """Verify an activation exactly as `accept` does (deputy's signature, this box,
        not revoked, in its window) without storing it: for one delivered online and
        waiting for a host supervisor. A refusal is audited and raised."""
        moment = self.effective_now(now)
        try:
            record = parse_record(code_or_record)
            _expect(record, Activation, "連携起動")
            trust = self._trust_for(record.stricken_town)
            return accept_activation(
                record,
                host_town=self.host_town,
                host_box=self.host_box,
                now=moment,
                town_public=trust.publics,
                clerk_certs=trust.clerks,
                host_supervisor=host_supervisor,
                revoked=self._revoked,
            )
        except ActivationRefused as refusal:
            self._record_refusal(refusal, host_supervisor)
            raise

    def accept_break_glass(
        self, record: BreakGlass | Mapping[str, Any] | str, *, now: float | None = None
    ) -> AcceptedActivation:
        moment = self.effective_now(now)
        with self._lock:
            try:
                bg = parse_record(record)
                _expect(bg, BreakGlass, "緊急起動")
                used = any(
                    a.kind == "break_glass"
                    and a.stricken_town == bg.stricken_town
                    and a.host_box == self.host_box
                    and a.id not in self._ratified
                    for a in self._accepted.values()
                )
                accepted = accept_break_glass(
                    bg,
                    host_town=self.host_town,
                    host_box=self.host_box,
                    now=moment,
                    host=self._trust_for(self.host_town),
                    stricken=self._trust_for(bg.stricken_town),
                    # The same break-glass again is a replay, refused like a second one.
                    used=used or bg.id in self._accepted,
                )
            except ActivationRefused as refusal:
                self._record_refusal(refusal, "")
                raise
            self._log(accepted.stricken_town, AuditKind.BREAK_GLASS, accepted.audit_details())
            self._store_accepted(accepted)
            return self._view(accepted)

    def revoke(
        self, code_or_record: str | Mapping[str, Any] | Revocation, *, now: float | None = None
    ) -> Revocation:
        """Store a deputy's revocation; it overrides its target from now on, even if the
        target arrives later."""
        return self._store_target_record(
            code_or_record, Revocation, self._revoked, "revocation",
            AuditKind.ACTIVATION_REVOKED, now,
        )  # fmt: skip

    def ratify(
        self, code_or_record: str | Mapping[str, Any] | Ratification, *, now: float | None = None
    ) -> Ratification:
        """Store a deputy's ratification of a break-glass."""
        return self._store_target_record(
            code_or_record, Ratification, self._ratified, "ratification",
            AuditKind.RATIFICATION, now,
        )  # fmt: skip

    def _store_target_record(
        self,
        code_or_record: Any,
        kind: type[_T],
        store: dict[bytes, _T],
        name: str,
        audit_kind: AuditKind,
        now: float | None,
    ) -> _T:
        """Revocations and ratifications: a deputy-signed record about an earlier one,
        audited and kept once, whichever copy arrives first."""
        moment = self.effective_now(now)
        record, signer = self._deputy_record(code_or_record, kind)
        with self._lock:
            if record.target not in store:
                self._log(
                    record.town,
                    audit_kind,
                    {"record": record.target.hex(), "signer": signer.login_id, "at": record.at},
                )
                self.storage.save(
                    (*self._prefix, name, record.target.hex()), _canonical(record.to_json())
                )
                store[record.target] = record
            self._observe(record.at, moment)
            return store[record.target]

    # ------------------------------------------------------------------ answering

    def grant(
        self, stricken_town: str, login_id: str, now: float | None = None
    ) -> AcceptedActivation | None:
        """The accepted activation or break-glass that lets this clerk of `stricken_town`
        open it on this box now, or None. Raises the clock's ClockBehindFloor when the
        wall clock is behind a signed time already seen."""
        moment = self.effective_now(now)
        with self._lock:
            for accepted in sorted(self._accepted.values(), key=lambda a: -a.expires_at):
                view = self._view(accepted)
                if (
                    view.host_box == self.host_box
                    and view.names(stricken_town, login_id)
                    and view.valid_at(moment)
                ):
                    return view
        return None

    def is_open_allowed(self, stricken_town: str, login_id: str, now: float | None = None) -> bool:
        """May this clerk of `stricken_town` open it on this host box now? (The clerk's
        own box opens its own town without activation; that is the caller's rule.)"""
        return self.grant(stricken_town, login_id, now) is not None

    def activations(self, stricken_town: str | None = None) -> list[AcceptedActivation]:
        """Everything accepted (with revoked and ratified flags), newest first."""
        with self._lock:
            views = [self._view(a) for a in self._accepted.values()]
        return sorted(
            (v for v in views if stricken_town in (None, v.stricken_town)),
            key=lambda a: -a.accepted_at,
        )

    def unratified(self) -> list[AcceptedActivation]:
        return [a for a in self.activations() if not a.ratified]

    # ------------------------------------------------------------------ internals

    def _trust_for(self, town: str) -> TownTrust:
        trust = self._trust(town)
        if trust is None:
            raise ActivationRefused(Refusal.UNKNOWN_SIGNER, f"no trust for {town}", town=town)
        return trust

    def _deputy_record(self, code_or_record: Any, cls: type) -> tuple[Any, ClerkCertificate]:
        try:
            record = parse_record(code_or_record)
            _expect(record, cls, getattr(cls, "LABEL", cls.__name__))
            return verify_deputy_record(record, cls, self._trust_for(record.town))
        except ActivationRefused as refusal:
            self._record_refusal(refusal, "")
            raise

    def _view(self, accepted: AcceptedActivation) -> AcceptedActivation:
        ratified = accepted.kind != "break_glass" or accepted.id in self._ratified
        return replace(accepted, ratified=ratified, revoked=accepted.id in self._revoked)

    def _store_accepted(self, accepted: AcceptedActivation) -> None:
        data = {
            "record": dict(accepted.record),
            "accepted_at": accepted.accepted_at,
            "accepted_by": accepted.accepted_by,
        }
        self.storage.save((*self._prefix, "accepted", accepted.id.hex()), _canonical(data))
        self._accepted[accepted.id] = accepted

    def _observe(self, signed_time: float, moment: float) -> None:
        # A verified, signed time not in the future raises the clock's floor.
        if signed_time <= moment:
            self._clock.observe_signed_time(signed_time)

    def _log(self, town: str, kind: AuditKind, details: Mapping[str, Any]) -> None:
        if self._audit is None:
            return
        details = dict(details, host_box=self.host_box)
        self._audit.record(town, kind, details)
        if town != self.host_town:
            self._audit.record(self.host_town, kind, details)

    def _record_refusal(self, refusal: ActivationRefused, supervisor: str) -> None:
        if self._audit is None or not refusal.town:
            return
        try:
            self._log(
                refusal.town,
                AuditKind.ACTIVATION_REFUSED,
                {
                    "reason": str(refusal.reason),
                    "detail": refusal.detail,
                    "supervisor": supervisor,
                },
            )
        except Exception:  # a refusal stands even when it cannot be logged
            return

    def _load(self) -> None:
        for key, raw in self.storage.load_range((*self._prefix, "revocation")):
            try:
                record = parse_record(json.loads(raw))
                revocation, _ = verify_deputy_record(
                    record, Revocation, self._trust_for(record.town)
                )
                self._revoked[revocation.target] = revocation
            except (ActivationRefused, ValueError, KeyError) as exc:
                self.problems.append(f"{'/'.join(key)}: {exc}")
        for key, raw in self.storage.load_range((*self._prefix, "ratification")):
            try:
                record = parse_record(json.loads(raw))
                ratification, _ = verify_deputy_record(
                    record, Ratification, self._trust_for(record.town)
                )
                self._ratified[ratification.target] = ratification
            except (ActivationRefused, ValueError, KeyError) as exc:
                self.problems.append(f"{'/'.join(key)}: {exc}")
        for key, raw in self.storage.load_range((*self._prefix, "accepted")):
            try:
                self._reload(raw)
            except (ActivationRefused, ValueError, KeyError, TypeError) as exc:
                self.problems.append(f"{'/'.join(key)}: {exc}")

    def _reload(self, raw: bytes) -> None:
        data = json.loads(raw)
        record = parse_record(data["record"])
        at, by = float(data["accepted_at"]), str(data["accepted_by"])
        # Signatures, roles and host are checked again; the time window is checked at
        # every question instead, so `now` here is the record's own start.
        if isinstance(record, BreakGlass):
            accepted = accept_break_glass(
                record,
                host_town=self.host_town,
                host_box=self.host_box,
                now=record.not_before,
                host=self._trust_for(self.host_town),
                stricken=self._trust_for(record.stricken_town),
            )
        else:
            _expect(record, Activation, "連携起動")
            trust = self._trust_for(record.stricken_town)
            accepted = accept_activation(
                record,
                host_town=self.host_town,
                host_box=self.host_box,
                now=record.not_before,
                town_public=trust.publics,
                clerk_certs=trust.clerks,
                host_supervisor=by,
            )
        self._accepted[accepted.id] = replace(accepted, accepted_at=at, accepted_by=by)


# ---------------------------------------------------------------------------- 職務代理


@dataclass(frozen=True, slots=True)
class Signatory:
    """Who signs certificates at a moment: the 認証者 line of a certificate."""

    name: str
    title: str
    acting_for_mayor: bool
    since: float  # UTC seconds
    source: str  # "official" (the town's register) or the appointment id (hex)


def acting_mayor_at(
    moment: float, appointments: Iterable[Appointment], officials: Iterable[Official] = ()
) -> Signatory | None:
    """The latest of the town's registered officials (by date, from 00:00 JST) and the
    signed appointments whose start is not after `moment`; an appointment wins a tie."""
    candidates: list[tuple[float, int, str, Signatory]] = []
    for official in officials:
        start = datetime.combine(official.start, datetime.min.time(), _JST).timestamp()
        if official.end is not None:
            end = datetime.combine(official.end, datetime.min.time(), _JST) + timedelta(days=1)
            if moment >= end.timestamp():
                continue
        if start <= moment:
            candidates.append(
                (
                    start,
                    0,
                    "",
                    Signatory(
                        official.name, official.title, official.acting_for_mayor, start, "official"
                    ),
                )
            )
    for appointment in appointments:
        if appointment.start <= moment:
            ident = appointment.id.hex()
            candidates.append(
                (
                    appointment.start,
                    1,
                    ident,
                    Signatory(
                        appointment.name,
                        appointment.title,
                        appointment.acting_for_mayor,
                        appointment.start,
                        ident,
                    ),
                )
            )
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[:3])[3]


class Appointments:
    """A town's signed 職務代理 appointments through the storage seam, re-verified on load.

    (town, "appointment", id)    the appointment record (JSON)
    """

    def __init__(
        self,
        storage: Storage,
        *,
        town: str,
        trust: TrustLookup,
        audit: AuditRecorder | None = None,
    ) -> None:
        self.storage = storage
        self.town = town
        self._trust = trust
        self._audit = audit
        self._items: dict[bytes, Appointment] = {}
        self.problems: list[str] = []
        for key, raw in storage.load_range((town, "appointment")):
            try:
                appointment, _ = self._verify(json.loads(raw))
                self._items[appointment.id] = appointment
            except (ActivationRefused, ValueError) as exc:
                self.problems.append(f"{'/'.join(key)}: {exc}")

    def _verify(self, record: Any) -> tuple[Appointment, ClerkCertificate]:
        parsed = parse_record(record)
        _expect(parsed, Appointment, "職務代理者の指定")
        trust = self._trust(self.town)
        if trust is None:
            raise ActivationRefused(Refusal.UNKNOWN_SIGNER, "no trust", town=self.town)
        signer = _verify_signer(parsed, trust, is_representative, Refusal.NOT_REPRESENTATIVE)
        return parsed, signer

    def register(self, code_or_record: str | Mapping[str, Any] | Appointment) -> Appointment:
        """Verify (signed by a representative of this town), log and store."""
        appointment, signer = self._verify(code_or_record)
        if appointment.id not in self._items:
            if self._audit is not None:
                self._audit.record(
                    self.town,
                    AuditKind.DEPUTY_APPOINTED,
                    {
                        "record": appointment.id.hex(),
                        "name": appointment.name,
                        "title": appointment.title,
                        "acting_for_mayor": appointment.acting_for_mayor,
                        "start": appointment.start,
                        "signer": signer.login_id,
                    },
                )
            self.storage.save(
                (self.town, "appointment", appointment.id.hex()), _canonical(appointment.to_json())
            )
            self._items[appointment.id] = appointment
        return appointment

    def all(self) -> list[Appointment]:
        return sorted(self._items.values(), key=lambda a: (a.start, a.id))

    def acting_mayor_at(
        self, moment: float, officials: Iterable[Official] = ()
    ) -> Signatory | None:
        return acting_mayor_at(moment, self._items.values(), officials)
