"""The signed payload in every document's QR code, verifiable offline on plain paper.

Text form (what the QR holds, what `renkei verify` takes): ``RK1:`` + Base45 (RFC 9285)
of the binary record below. Base45's alphabet is QR's alphanumeric mode, so the code stays
small and zbar returns it unchanged (binary QR data is re-encoded by readers).

Binary record, version 1 (integers big-endian; str8 = u8 length + UTF-8 bytes; bytes8 =
u8 length + bytes):

    u8      version = 1
    u8      document kind (DocumentKind code)
    str8    issuing town code               (the stricken town when issued at a partner)
    str8    発行番号 (IssueNumber text)
    u32     issued at, UTC seconds
    u32     data as of, UTC seconds
    bytes8  data version                     (≤ 32 bytes, e.g. a version-vector digest)
    u16     pages
    str8    subject                          (氏名 or list title, ≤ 60 bytes, may be "")
    32      BLAKE2b-256 of the printed text  (`Canvas.plain_text()`)
    bytes8  audit-chain head                 (≤ 32 bytes)
    -- the issuing clerk's certificate, signed by the town (shared.crypto) --
    str8    login id
    32      clerk X25519 public key
    32      clerk Ed25519 public key
    u8      roles (bit i = i-th `Role`)
    u8      flags (bit 0 = on the emergency roster)
    u8      deputy rank
    u32     town key epoch
    u32     certificate issued at, UTC seconds
    64      town Ed25519 signature over the certificate (`ClerkCertificate.signed_bytes`)
    -- end --
    64      clerk Ed25519 signature over b"renkei-qr\\x00" + every byte above

Every byte is covered by a signature: the clerk's covers the whole record, the town's
covers the certificate, so changing any one byte (or Base45 character) fails.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import nacl.exceptions
from nacl.public import PublicKey
from nacl.signing import VerifyKey

from printing.errors import PayloadError
from shared.crypto import (
    CertificateError,
    ClerkCertificate,
    ClerkKeys,
    TownPublic,
    verify_clerk_certificate,
)
from shared.model import Role
from shared.wareki import to_wareki

PREFIX = "RK1:"
VERSION = 1
_CONTEXT = b"renkei-qr\x00"
_ROLES = tuple(Role)
_JST = timezone(timedelta(hours=9), "JST")


class DocumentKind(enum.Enum):
    """Document kinds with their one-byte code and Japanese title."""

    JUMINHYO = (1, "住民票の写し")
    JOHYO = (2, "住民票の除票の写し")
    KAZEI = (3, "所得・課税証明書")
    HIKAZEI = (4, "非課税証明書")
    NOZEI = (5, "納税証明書")
    KEIJIDOSHA = (6, "軽自動車税（種別割）納税証明書（継続検査用）")
    SHIKAKU = (7, "国民健康保険資格確認書")
    MENJO = (8, "国民健康保険一部負担金免除証明書")
    ZENJUMIN = (9, "全住民一覧（安否確認用）")
    YOSHIEN = (10, "避難行動要支援者名簿")
    OSHIRASE = (11, "資格情報のお知らせ")
    UKETSUKE = (12, "申請受付票")

    @property
    def code(self) -> int:
        return int(self.value[0])

    @property
    def title(self) -> str:
        return str(self.value[1])

    @classmethod
    def from_code(cls, code: int) -> DocumentKind:
        for kind in cls:
            if kind.code == code:
                return kind
        raise PayloadError(f"unknown document kind {code}")


@dataclass(frozen=True, slots=True)
class PayloadFields:
    kind: DocumentKind
    town_code: str
    issue_number: str
    issued_at: datetime
    data_as_of: datetime
    data_version: bytes
    pages: int
    subject: str
    content_digest: bytes
    audit_head: bytes


@dataclass(frozen=True, slots=True)
class VerifiedPayload:
    """A payload whose signatures verified: what the document must say."""

    fields: PayloadFields
    clerk: ClerkCertificate

    def summary_lines(self) -> list[str]:
        f = self.fields

        def when(moment: datetime) -> str:
            local = moment.astimezone(_JST)
            return f"{to_wareki(local.date())} {local:%H時%M分}"

        return [
            "署名は有効です（発行町村の鍵で認証された職員の署名）。",
            f"書類: {f.kind.title}",
            f"発行町村コード: {f.town_code}",
            f"発行番号: {f.issue_number}（全{f.pages}枚）",
            f"発行日時: {when(f.issued_at)}",
            f"記録の時点: {when(f.data_as_of)}",
            f"対象: {f.subject or '（なし）'}",
            f"発行職員ID: {self.clerk.login_id}",
            f"印字内容のハッシュ: {f.content_digest.hex()}",
            f"監査チェーン先頭: {f.audit_head.hex()}",
            f"データ版: {f.data_version.hex()}",
        ]


# ---------------------------------------------------------------------------- Base45

_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_INDEX = {c: i for i, c in enumerate(_B45)}


def b45encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out.append(_B45[c] + _B45[d] + _B45[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(_B45[c] + _B45[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    try:
        values = [_B45_INDEX[c] for c in text]
    except KeyError as exc:
        raise PayloadError(f"character {exc.args[0]!r} is not Base45") from exc
    if len(values) % 3 == 1:
        raise PayloadError("Base45 text has a dangling character")
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 2025
            if n > 0xFFFF:
                raise PayloadError("Base45 triplet out of range")
            out += n.to_bytes(2, "big")
        else:
            n = chunk[0] + chunk[1] * 45
            if n > 0xFF:
                raise PayloadError("Base45 pair out of range")
            out.append(n)
    return bytes(out)


# ---------------------------------------------------------------------------- binary


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("payload times must be timezone-aware")
    return int(moment.timestamp())


def _str8(value: str, what: str, limit: int = 255) -> bytes:
    raw = value.encode()
    if len(raw) > limit:
        raise ValueError(f"{what} longer than {limit} bytes")
    return bytes([len(raw)]) + raw


def _bytes8(value: bytes, what: str, limit: int = 32) -> bytes:
    if len(value) > limit:
        raise ValueError(f"{what} longer than {limit} bytes")
    return bytes([len(value)]) + value


def _short_subject(subject: str, limit: int = 60) -> str:
    while len(subject.encode()) > limit:
        subject = subject[:-1]
    return subject


def _encode_body(fields: PayloadFields, cert: ClerkCertificate) -> bytes:
    roles = sum(1 << _ROLES.index(r) for r in cert.roles)
    return b"".join(
        [
            bytes([VERSION, fields.kind.code]),
            _str8(fields.town_code, "town code"),
            _str8(fields.issue_number, "issue number"),
            struct.pack(">II", _seconds(fields.issued_at), _seconds(fields.data_as_of)),
            _bytes8(fields.data_version, "data version"),
            struct.pack(">H", fields.pages),
            _str8(_short_subject(fields.subject), "subject"),
            fields.content_digest if len(fields.content_digest) == 32 else _bad_digest(),
            _bytes8(fields.audit_head, "audit head"),
            _str8(cert.login_id, "login id"),
            bytes(cert.sealing_key),
            bytes(cert.verify_key),
            bytes([roles, 1 if cert.on_roster else 0, cert.deputy_rank]),
            struct.pack(">II", cert.epoch, _seconds(cert.issued_at)),
            cert.signature,
        ]
    )


def _bad_digest() -> bytes:
    raise ValueError("content digest must be 32 bytes (BLAKE2b-256)")


def sign_payload(fields: PayloadFields, clerk_keys: ClerkKeys, clerk_cert: ClerkCertificate) -> str:
    """The QR text for a document, signed by the issuing clerk."""
    if bytes(clerk_keys.public.verify_key) != bytes(clerk_cert.verify_key):
        raise ValueError("clerk keys do not match the clerk certificate")
    body = _encode_body(fields, clerk_cert)
    signature = clerk_keys.signing_key.sign(_CONTEXT + body).signature
    return PREFIX + b45encode(body + signature)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PayloadError("payload is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def str8(self) -> str:
        try:
            return self.take(self.u8()).decode()
        except UnicodeDecodeError as exc:
            raise PayloadError("payload text is not UTF-8") from exc

    def bytes8(self) -> bytes:
        return self.take(self.u8())


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def decode_payload(payload: str) -> tuple[PayloadFields, ClerkCertificate, bytes, bytes]:
    """Parse without checking signatures: (fields, clerk certificate, body, signature)."""
    if not payload.startswith(PREFIX):
        raise PayloadError("not a Renkei payload (expected the RK1: prefix)")
    data = b45decode(payload[len(PREFIX) :])
    if len(data) < 64:
        raise PayloadError("payload is truncated")
    body, signature = data[:-64], data[-64:]
    r = _Reader(body)
    if r.u8() != VERSION:
        raise PayloadError("unsupported payload version")
    kind = DocumentKind.from_code(r.u8())
    town = r.str8()
    number = r.str8()
    issued, as_of = struct.unpack(">II", r.take(8))
    data_version = r.bytes8()
    (pages,) = struct.unpack(">H", r.take(2))
    subject = r.str8()
    digest = r.take(32)
    head = r.bytes8()
    login = r.str8()
    sealing = r.take(32)
    verify = r.take(32)
    roles_bits, flags, rank = r.take(3)
    epoch, cert_issued = struct.unpack(">II", r.take(8))
    town_signature = r.take(64)
    if r.pos != len(body):
        raise PayloadError("payload has trailing bytes")
    if roles_bits >> len(_ROLES) or flags > 1:
        raise PayloadError("unknown role or flag bits")
    try:
        cert = ClerkCertificate(
            town=town,
            login_id=login,
            sealing_key=PublicKey(sealing),
            verify_key=VerifyKey(verify),
            roles=tuple(role for i, role in enumerate(_ROLES) if roles_bits >> i & 1),
            on_roster=bool(flags),
            deputy_rank=rank,
            epoch=epoch,
            issued_at=_utc(cert_issued),
            signature=town_signature,
        )
    except (ValueError, TypeError, nacl.exceptions.CryptoError) as exc:
        raise PayloadError(f"malformed clerk certificate: {exc}") from exc
    fields = PayloadFields(
        kind, town, number, _utc(issued), _utc(as_of), data_version, pages, subject, digest, head
    )
    return fields, cert, body, signature


TownPublicLookup = Callable[[str, int], TownPublic | None]


def verify_payload(payload: str, town_public_lookup: TownPublicLookup) -> VerifiedPayload:
    """Check a scanned payload offline: the town's key (looked up by town code and epoch)
    certifies the clerk, whose key signed the record. PayloadError on any failure."""
    fields, cert, body, signature = decode_payload(payload.strip())
    town_public = town_public_lookup(fields.town_code, cert.epoch)
    if town_public is None:
        raise PayloadError(
            f"no public key for town {fields.town_code} epoch {cert.epoch}",
            "発行町村の公開鍵がありません。町村の公開鍵ファイルを指定してください。",
        )
    try:
        verify_clerk_certificate(cert, town_public)
    except CertificateError as exc:
        raise PayloadError(f"clerk certificate does not verify: {exc}") from exc
    try:
        cert.verify_key.verify(_CONTEXT + body, signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise PayloadError("the clerk's signature does not match the payload") from exc
    if cert.issued_at > fields.issued_at:
        raise PayloadError("document is older than the clerk certificate that signed it")
    return VerifiedPayload(fields, cert)
