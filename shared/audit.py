"""The audit trail: one signed hash chain per writer, sealed to the town (BRIEF §3 Audit).

A writer is a box (`box:<box id>`, signed with the box's enrolled key — a sealed box can
still record a failed login) or a clerk's session (`clerk:<login>:<key id>:<session>`,
signed with the clerk's own key while they are logged in). Each writer numbers its
entries 1, 2, 3 … with no gaps, and each entry carries the hash of the one before:

    entry body (canonical JSON: sorted keys, no spaces, UTF-8)
      {"v": 1, "town": "15307", "writer": "box:seiro-1", "seq": 7,
       "prev": <hex BLAKE2b-256 of entry 6's signed bytes; 64 zeros for entry 1>,
       "time_ms": <UTC milliseconds from the trusted clock>,
       "kind": "login_failed", "details": {…}, "nonce": <16 random bytes, hex>}
    signed bytes   = "renkei audit entry v1" 0x00 ‖ body
    entry hash     = BLAKE2b-256(signed bytes)       (what the next entry's "prev" holds)
    signature      = Ed25519(writer key, signed bytes)
    stored plaintext = canonical JSON of body + {"sig": <hex signature>}

The nonce keeps a head hash (printed in QR codes, shown to peers) from confirming a
guess of what an entry says. The plaintext is sealed to the town's public key with
`shared.blobs.seal_blob` (document "audit␟<writer>␟<seq>", writer sequence = seq, blob
signed with the same writer key) and stored through the storage seam under

    (town, "audit", writer, seq as 12 digits)     sealed entry
    (town, "audit-head", writer)                   the writer's own head {seq, hash}
                                                   (cleartext, so a sealed box can append)
    (town, "audit-anchor", writer)                 a head seen elsewhere (AnchorStore)

Audit documents are never compacted, trimmed or removed: nothing here calls
`Storage.remove`, and importing a peer's replica only ever adds entries. Details are JSON
without secrets: `append` refuses keys that name a password, secret, private key or
個人番号 and any string holding a 12-digit number with a valid 個人番号 check digit.

`verify_town` opens every chain with the town's key ring and names the first bad entry of
each: altered (signature, decryption or format), deleted (a gap), reordered (an entry under
another position, or a "prev" that is not the previous entry's hash), a cut tail (a chain
that stops short of a head anchored at a peer, the hub or a certificate's QR), a forked
chain (the entry at an anchored position has another hash), a whole-log rollback
(every anchored chain behind its anchor) and an entry signed by a box key after that key
was replaced by a re-enrolment or revoked (`BoxKey`).

Errors:

    AuditError
     ├── AuditSecretError   details that look like a secret or a 個人番号 (append refused)
     ├── AuditConflict      another entry already stored for (writer, seq); a chain whose
     │                      head record is missing or disagrees with what is stored; an
     │                      anchor that contradicts a stored one
     └── AuditFormatError   a writer id, kind or stored entry that cannot be used
"""

from __future__ import annotations

import enum
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import nacl.exceptions
import nacl.hash
import nacl.utils
from nacl.encoding import RawEncoder
from nacl.signing import SigningKey, VerifyKey

from shared.blobs import (
    BlobDecryptError,
    BlobError,
    BlobFields,
    BlobFormatError,
    BlobSignatureError,
    BlobTooLarge,
    UnknownWriter,
    WriterLookup,
    blob_id,
    open_blob,
    read_header,
    seal_blob,
    verify_blob,
)
from shared.crypto import ClerkCertificate, ClerkKeys, KeyRing, TownPublic, key_id
from shared.model import is_valid_my_number
from shared.storage import Storage, StorageKey

GENESIS = bytes(32)
SIGN_CONTEXT = b"renkei audit entry v1\x00"
ENTRY_VERSION = 1
SEQ_DIGITS = 12
MAX_DETAILS_BYTES = 16 * 1024
MAX_ENTRY_BYTES = 64 * 1024
NONCE_SIZE = 16

AUDIT = "audit"
HEAD = "audit-head"
ANCHOR = "audit-anchor"

_JST = timezone(timedelta(hours=9), "JST")
_WRITER_RE = re.compile(r"^[A-Za-z0-9._:@+-]{1,200}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "private",
    "privkey",
    "mynumber",
    "my_number",
    "個人番号",
    "マイナンバー",
)
_SECRET_KEYS = {"pin", "seed", "pwd"}
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_TWELVE_DIGITS = re.compile(r"(?<![0-9０-９])[0-9０-９]{12}(?![0-9０-９])")

# ---------------------------------------------------------------------------- errors


class AuditError(Exception):
    """Base of every error this module raises."""


class AuditSecretError(AuditError):
    """Details that look like a secret or a 個人番号; nothing was written."""


class AuditConflict(AuditError):
    """An entry already stored for this (writer, seq), or a head that disagrees."""


class AuditFormatError(AuditError):
    """A writer id, event kind or stored entry that cannot be used."""


# ---------------------------------------------------------------------------- kinds


class AuditKind(enum.StrEnum):
    """What happened. Readers accept other lower-case kinds (written by newer versions)."""

    LOGIN_OK = "login_ok"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    UNLOCK = "unlock"
    LOCK = "lock"
    ACTIVATION_ACCEPTED = "activation_accepted"
    ACTIVATION_REFUSED = "activation_refused"
    ACTIVATION_REVOKED = "activation_revoked"
    BREAK_GLASS = "break_glass"
    RATIFICATION = "ratification"
    ISSUANCE = "issuance"
    REFUSAL = "refusal"
    REPRINT = "reprint"
    INTAKE = "intake"
    SPOILED = "spoiled"
    EXPORT = "export"
    PRINT = "print"
    CONFIG_CHANGE = "config_change"
    DEPUTY_APPOINTED = "deputy_appointed"
    DATE_CONFIRMED = "date_confirmed"
    KEY_ROTATION = "key_rotation"
    ENROLMENT_TOKEN = "enrolment_token"
    BOX_ENROLLED = "box_enrolled"
    ENROLMENT_REFUSED = "enrolment_refused"
    BOX_REVOKED = "box_revoked"
    CLERK_CHANGED = "clerk_changed"
    EMERGENCY_STEP = "emergency_step"
    EMERGENCY_ENDED = "emergency_ended"
    PROVISIONAL_CHANGE = "provisional_change"


KIND_LABELS: dict[str, str] = {
    AuditKind.LOGIN_OK: "ログイン",
    AuditKind.LOGIN_FAILED: "ログイン失敗",
    AuditKind.LOGOUT: "ログアウト",
    AuditKind.UNLOCK: "町データの解錠",
    AuditKind.LOCK: "町データの施錠",
    AuditKind.ACTIVATION_ACCEPTED: "連携起動の受付",
    AuditKind.ACTIVATION_REFUSED: "連携起動の拒否",
    AuditKind.ACTIVATION_REVOKED: "連携起動の取消",
    AuditKind.BREAK_GLASS: "緊急起動(ブレークグラス)",
    AuditKind.RATIFICATION: "緊急起動の追認",
    AuditKind.ISSUANCE: "証明書の交付",
    AuditKind.REFUSAL: "交付不可・受付のみの判断",
    AuditKind.REPRINT: "控えからの再出力",
    AuditKind.INTAKE: "申請の受付",
    AuditKind.SPOILED: "用紙の書き損じ",
    AuditKind.EXPORT: "データの持ち出し",
    AuditKind.PRINT: "印刷",
    AuditKind.CONFIG_CHANGE: "設定の変更",
    AuditKind.DEPUTY_APPOINTED: "職務代理者の指定",
    AuditKind.DATE_CONFIRMED: "日付の確認",
    AuditKind.KEY_ROTATION: "鍵の更新",
    AuditKind.ENROLMENT_TOKEN: "登録トークンの発行",
    AuditKind.BOX_ENROLLED: "ボックスの登録",
    AuditKind.ENROLMENT_REFUSED: "ボックス登録の拒否",
    AuditKind.BOX_REVOKED: "ボックス登録の取消",
    AuditKind.CLERK_CHANGED: "職員登録の変更",
    AuditKind.EMERGENCY_STEP: "緊急時手順の確認",
    AuditKind.EMERGENCY_ENDED: "緊急時運用の終了",
    AuditKind.PROVISIONAL_CHANGE: "暫定異動の記録",
}


# ---------------------------------------------------------------------------- helpers


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _blake2b_256(data: bytes) -> bytes:
    return nacl.hash.blake2b(data, digest_size=32, encoder=RawEncoder)


def check_writer_id(writer: str) -> str:
    """A writer id: 1–200 characters of A–Z a–z 0–9 . _ : @ + - (safe as a storage key
    part, in a blob header and in a QR code)."""
    if not isinstance(writer, str) or not _WRITER_RE.match(writer):
        raise AuditFormatError(f"invalid audit writer id {writer!r}")
    return writer


def box_writer_id(box_id: str, key_part: str | None = None) -> str:
    """A box's writer id: `box:<box id>` for the first key the hub certified for the box,
    `box:<box id>:<16 hex of key id>` for a key it was re-enrolled with later (a new
    disk starts a new chain; see WriterDirectory)."""
    return check_writer_id(f"box:{box_id}" if key_part is None else f"box:{box_id}:{key_part}")


def session_writer_id(certificate: ClerkCertificate | ClerkKeys, session: str) -> str:
    """A clerk session's writer id. It names the clerk's key (16 hex digits of its key
    id), so entries written before a password reset still find the key that signed them."""
    public = certificate.public if isinstance(certificate, ClerkKeys) else certificate
    return check_writer_id(f"clerk:{public.login_id}:{public.key_id[:16]}:{session}")


def seq_part(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}"


def entry_key(town: str, writer: str, seq: int) -> StorageKey:
    return (town, AUDIT, writer, seq_part(seq))


def _document(writer: str, seq: int) -> str:
    return "\x1f".join((AUDIT, writer, seq_part(seq)))


def jst_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, _JST).strftime("%Y年%m月%d日 %H:%M:%S")


def check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Check that details are plain JSON with no secret and no 個人番号; return a copy."""

    def walk(value: Any, path: str) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise AuditFormatError(f"details {path}: not a finite number")
            return value
        if isinstance(value, str):
            for match in _TWELVE_DIGITS.finditer(value):
                digits = match.group().translate(_FULLWIDTH_DIGITS)
                if is_valid_my_number(digits):
                    raise AuditSecretError(
                        f"details {path}: holds a 12-digit number with a valid 個人番号 "
                        "check digit; 個人番号 never enter the audit trail"
                    )
            return value
        if isinstance(value, list | tuple):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise AuditFormatError(f"details {path}: keys must be strings")
                lowered = key.lower()
                if lowered in _SECRET_KEYS or any(p in lowered for p in _SECRET_KEY_PARTS):
                    raise AuditSecretError(
                        f"details {path}.{key}: secrets and 個人番号 never enter the audit trail"
                    )
                out[key] = walk(item, f"{path}.{key}")
            return out
        raise AuditFormatError(f"details {path}: {type(value).__name__} is not JSON")

    if not isinstance(details, Mapping):
        raise AuditFormatError("details must be a JSON object")
    checked: dict[str, Any] = walk(details, "")
    if len(_canonical(checked)) > MAX_DETAILS_BYTES:
        raise AuditFormatError(f"details above {MAX_DETAILS_BYTES} bytes")
    return checked


# ---------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class AuditEntry:
    town: str
    writer: str
    seq: int
    prev: bytes
    time_ms: int
    kind: str
    details: Mapping[str, Any]
    nonce: bytes
    signature: bytes = b""

    @property
    def time(self) -> float:
        """UTC seconds."""
        return self.time_ms / 1000

    def _body(self) -> dict[str, Any]:
        return {
            "v": ENTRY_VERSION,
            "town": self.town,
            "writer": self.writer,
            "seq": self.seq,
            "prev": self.prev.hex(),
            "time_ms": self.time_ms,
            "kind": self.kind,
            "details": dict(self.details),
            "nonce": self.nonce.hex(),
        }

    def signed_bytes(self) -> bytes:
        return SIGN_CONTEXT + _canonical(self._body())

    @property
    def hash(self) -> bytes:
        return _blake2b_256(self.signed_bytes())

    def to_plaintext(self) -> bytes:
        return _canonical(dict(self._body(), sig=self.signature.hex()))

    @classmethod
    def from_plaintext(cls, raw: bytes) -> AuditEntry:
        if len(raw) > MAX_ENTRY_BYTES:
            raise AuditFormatError("audit entry too large")
        try:
            data = json.loads(raw.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise AuditFormatError("audit entry is not UTF-8 JSON") from exc
        if not isinstance(data, dict) or data.get("v") != ENTRY_VERSION:
            raise AuditFormatError("not a version-1 audit entry")
        try:
            town, writer, kind = data["town"], data["writer"], data["kind"]
            seq, time_ms, details = data["seq"], data["time_ms"], data["details"]
            prev = bytes.fromhex(data["prev"])
            nonce = bytes.fromhex(data["nonce"])
            signature = bytes.fromhex(data["sig"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditFormatError(f"audit entry field missing or malformed: {exc}") from exc
        if set(data) != _ENTRY_FIELDS:
            raise AuditFormatError("audit entry has unexpected fields")
        if not (
            isinstance(town, str)
            and isinstance(writer, str)
            and isinstance(kind, str)
            and _KIND_RE.match(kind)
            and _is_int(seq)
            and seq >= 1
            and _is_int(time_ms)
            and isinstance(details, dict)
            and len(prev) == 32
            and len(nonce) == NONCE_SIZE
            and len(signature) == 64
        ):
            raise AuditFormatError("audit entry fields of the wrong type or size")
        return cls(town, writer, seq, prev, time_ms, kind, details, nonce, signature)

    def verify_signature(self, key: VerifyKey) -> bool:
        try:
            key.verify(self.signed_bytes(), self.signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


_ENTRY_FIELDS = {"v", "town", "writer", "seq", "prev", "time_ms", "kind", "details", "nonce", "sig"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest entry of one writer's chain: what peers, the hub and QR codes anchor."""

    writer: str
    seq: int
    hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {"writer": self.writer, "seq": self.seq, "hash": self.hash.hex()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainHead:
        try:
            head = cls(check_writer_id(data["writer"]), data["seq"], bytes.fromhex(data["hash"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditFormatError(f"malformed chain head: {exc}") from exc
        if not _is_int(head.seq) or head.seq < 0 or len(head.hash) != 32:
            raise AuditFormatError("malformed chain head")
        return head


@dataclass(frozen=True, slots=True)
class AuditWriter:
    """Who writes: a writer id and its Ed25519 signing key."""

    writer_id: str
    signing_key: SigningKey = field(repr=False)

    def __post_init__(self) -> None:
        check_writer_id(self.writer_id)

    @classmethod
    def for_box(cls, box_id: str, signing_key: SigningKey) -> AuditWriter:
        return cls(box_writer_id(box_id), signing_key)

    @classmethod
    def for_session(cls, clerk_keys: ClerkKeys, session: str) -> AuditWriter:
        return cls(session_writer_id(clerk_keys, session), clerk_keys.signing_key)

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key


@dataclass(frozen=True, slots=True)
class BoxKey:
    """One key certified for a box, with the period it was valid: from its enrolment
    until the box was re-enrolled with another key (`replaced_at`) or revoked
    (`revoked_at`), UTC seconds; None while it is the box's current key."""

    key: VerifyKey
    enrolled_at: float | None = None
    replaced_at: float | None = None
    revoked_at: float | None = None

    @property
    def retired_at(self) -> float | None:
        ends = [t for t in (self.replaced_at, self.revoked_at) if t is not None]
        return min(ends) if ends else None

    @property
    def key_part(self) -> str:
        return key_id(self.key)[:16]


class WriterDirectory:
    """Writer id → verify key: boxes by id, clerk sessions by the certified clerk key the
    id names (every certificate the town ever issued a clerk may be given), and any other
    writer by exact id. Give only certificates and keys already verified.

    A box may have had several certified keys (re-enrolled after its disk was replaced),
    given oldest first: `box:<id>` is the chain of its first key, `box:<id>:<16 hex of key
    id>` the chain of a later one. `retired_at(writer)` is when that key was replaced or
    revoked: an entry of that chain timed after it is refused (`Fault.RETIRED_KEY`)."""

    def __init__(
        self,
        *,
        boxes: Mapping[str, VerifyKey | Sequence[BoxKey]] | None = None,
        clerks: Iterable[ClerkCertificate] = (),
        others: Mapping[str, VerifyKey] | None = None,
    ) -> None:
        self._boxes: dict[str, list[BoxKey]] = {
            box: [BoxKey(keys)] if isinstance(keys, VerifyKey) else list(keys)
            for box, keys in (boxes or {}).items()
        }
        self._clerks: dict[tuple[str, str], VerifyKey] = {}
        for cert in clerks:
            self._clerks[(cert.login_id, cert.key_id[:16])] = cert.verify_key
        self._others = dict(others or {})

    def box_key(self, writer: str) -> BoxKey | None:
        kind, _, rest = writer.partition(":")
        if kind != "box" or writer in self._others:
            return None
        box, _, part = rest.partition(":")
        keys = self._boxes.get(box, [])
        if not part:
            return keys[0] if keys else None
        return next((k for k in keys if k.key_part == part), None)

    def retired_at(self, writer: str) -> float | None:
        found = self.box_key(writer)
        return None if found is None else found.retired_at

    def __call__(self, writer: str) -> VerifyKey | None:
        if writer in self._others:
            return self._others[writer]
        kind, _, rest = writer.partition(":")
        if kind == "box":
            found = self.box_key(writer)
            return None if found is None else found.key
        if kind == "clerk":
            parts = rest.split(":")
            if len(parts) >= 3:
                return self._clerks.get((parts[0], parts[1]))
        return None


class AuditRecorder(Protocol):
    """What other subsystems call to leave an audit entry for a town."""

    def record(self, town: str, kind: AuditKind, details: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: list[tuple[str, int]] = field(default_factory=list)
    duplicates: int = 0
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # writer, seq, why
    peer_behind: list[tuple[str, int, int]] = field(default_factory=list)  # writer, ours, peer

    @property
    def ok(self) -> bool:
        return not self.refused


# Appending reads the head and writes the next entry: one lock for the process, so two
# AuditLog objects over the same store never both write the same (writer, seq). A writer
# id belongs to one process (a box process, or one clerk session in it).
_APPEND_LOCK = threading.Lock()


class AuditLog:
    """One town's audit trail through the storage seam. Needs only the town's public key
    to append; reading (verify_town, recover_head) needs its key ring."""

    def __init__(self, storage: Storage, town_public: TownPublic) -> None:
        self.storage = storage
        self.town_public = town_public
        self.town = town_public.town

    def append(
        self,
        writer: AuditWriter,
        kind: AuditKind,
        details: Mapping[str, Any],
        time: float,
    ) -> AuditEntry:
        """Append an entry to `writer`'s chain. `time` comes from the trusted clock."""
        try:
            kind = AuditKind(kind)
        except ValueError as exc:
            raise AuditFormatError(f"unknown audit kind {kind!r}") from exc
        checked = check_details(details)
        if not math.isfinite(time):
            raise AuditFormatError("time must be finite")
        with _APPEND_LOCK:
            head = self._head_record(writer.writer_id)
            if head is None:
                if self.storage.load_range((self.town, AUDIT, writer.writer_id)):
                    raise AuditConflict(
                        f"writer {writer.writer_id!r} has entries but no head record; "
                        "recover it with recover_head()"
                    )
                head = ChainHead(writer.writer_id, 0, GENESIS)
            seq = head.seq + 1
            key = entry_key(self.town, writer.writer_id, seq)
            if self.storage.load(key) is not None:
                raise AuditConflict(f"an entry {writer.writer_id!r} #{seq} is already stored")
            entry = AuditEntry(
                town=self.town,
                writer=writer.writer_id,
                seq=seq,
                prev=head.hash,
                time_ms=round(time * 1000),
                kind=str(kind),
                details=checked,
                nonce=nacl.utils.random(NONCE_SIZE),
            )
            signed = replace(
                entry, signature=writer.signing_key.sign(entry.signed_bytes()).signature
            )
            blob = seal_blob(
                signed.to_plaintext(),
                BlobFields(_document(writer.writer_id, seq), writer.writer_id, seq),
                self.town_public,
                writer.signing_key,
            )
            new_head = ChainHead(writer.writer_id, seq, signed.hash)
            self.storage.save_many(
                [(key, blob), (self._head_key(writer.writer_id), _canonical(new_head.to_json()))]
            )
            return signed

    def head(self, writer: str) -> ChainHead | None:
        """The head of a chain this store has written (seq and hash), for anchoring."""
        return self._head_record(writer)

    def writers(self) -> list[str]:
        return sorted({key[2] for key, _ in self.storage.load_range((self.town, AUDIT))})

    def stored_seqs(self, writer: str) -> list[int]:
        """Sequence numbers held for a writer (from storage keys; no key needed)."""
        return sorted(
            int(key[3])
            for key, _ in self.storage.load_range((self.town, AUDIT, check_writer_id(writer)))
            if len(key) == 4 and key[3].isdigit()
        )

    def blobs_after(self, writer: str, seq: int) -> list[bytes]:
        """Sealed entries of `writer` after `seq`, in order: what a peer asks for."""
        return [
            blob
            for key, blob in self.storage.load_range((self.town, AUDIT, check_writer_id(writer)))
            if len(key) == 4 and key[3].isdigit() and int(key[3]) > seq
        ]

    def import_blobs(
        self,
        blobs: Iterable[bytes],
        writer_lookup: WriterLookup,
        *,
        peer_heads: Mapping[str, int] | None = None,
    ) -> ImportReport:
        """Add replicated entries. Checks each blob's structure and writer signature (no
        town key needed), that it belongs to this town under the key it names, and refuses
        any entry that conflicts with a stored one (same writer and seq, other bytes).
        Never removes anything: a peer whose replica stops short of ours (`peer_heads`,
        its highest seq per writer) is reported in `peer_behind`, not followed."""
        report = ImportReport()
        batch: dict[StorageKey, bytes] = {}
        duplicates = 0
        for blob in blobs:
            try:
                header = verify_blob(blob, writer_lookup)
            except BlobError as exc:
                report.refused.append(("?", 0, f"{type(exc).__name__}: {exc}"))
                continue
            writer, seq = header.writer_id, header.writer_seq
            if header.town != self.town:
                report.refused.append((writer, seq, f"entry of town {header.town!r}"))
                continue
            try:
                check_writer_id(writer)
            except AuditFormatError as exc:
                report.refused.append((writer, seq, str(exc)))
                continue
            if seq < 1 or header.document != _document(writer, seq):
                report.refused.append((writer, seq, f"document {header.document!r} misplaced"))
                continue
            key = entry_key(self.town, writer, seq)
            existing = batch.get(key) or self.storage.load(key)
            if existing is None:
                batch[key] = blob
                report.added.append((writer, seq))
            elif blob_id(existing) == blob_id(blob):
                duplicates += 1
            else:
                report.refused.append((writer, seq, "conflicts with the stored entry"))
        if batch:
            self.storage.save_many(sorted(batch.items()))
        for writer, peer_seq in sorted((peer_heads or {}).items()):
            ours = self.stored_seqs(writer)
            if ours and ours[-1] > peer_seq:
                report.peer_behind.append((writer, ours[-1], peer_seq))
        return ImportReport(report.added, duplicates, report.refused, report.peer_behind)

    def recover_head(self, writer: str, keyring: KeyRing, writer_lookup: WriterLookup) -> ChainHead:
        """Rebuild a writer's head record from its stored chain (a box whose own chain came
        back from peers after losing its disk). The chain must verify end to end."""
        report = verify_town(self.storage, keyring, writer_lookup, {}, writers=[writer])
        if not report.ok:
            raise AuditConflict(f"cannot recover head: {report.first}")
        status = report.chains.get(writer)
        head = status.head if status else ChainHead(writer, 0, GENESIS)
        self.storage.save(self._head_key(writer), _canonical(head.to_json()))
        return head

    def _head_key(self, writer: str) -> StorageKey:
        return (self.town, HEAD, check_writer_id(writer))

    def _head_record(self, writer: str) -> ChainHead | None:
        raw = self.storage.load(self._head_key(writer))
        if raw is None:
            return None
        try:
            return ChainHead.from_json(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise AuditFormatError(f"unreadable head record of {writer!r}") from exc


class TownAuditRecorder:
    """An AuditRecorder for a box: writes as the box, sealed to each town's public key,
    timed by the trusted clock. `town_public` returns None for a town the box does not
    hold (the entry then cannot be written and AuditError is raised)."""

    def __init__(
        self,
        storage: Storage,
        writer: AuditWriter,
        town_public: Callable[[str], TownPublic | None],
        now: Callable[[], float],
    ) -> None:
        self._storage = storage
        self._writer = writer
        self._town_public = town_public
        self._now = now
        self._logs: dict[str, AuditLog] = {}

    @property
    def writer_id(self) -> str:
        return self._writer.writer_id

    def record(self, town: str, kind: AuditKind, details: Mapping[str, Any]) -> None:
        public = self._town_public(town)
        if public is None:
            raise AuditError(f"no public key for town {town!r}: cannot write its audit")
        log = self._logs.get(town)
        if log is None or log.town_public != public:
            log = self._logs[town] = AuditLog(self._storage, public)
        log.append(self._writer, kind, details, self._now())


# ---------------------------------------------------------------------------- anchors


class AnchorStore:
    """Heads of other writers' chains seen by this replica (a peer, the hub, a scanned QR).
    An anchor only ever moves forward; one that contradicts a stored anchor at the same
    seq is refused (AuditConflict) — that is itself evidence of a forked chain."""

    def __init__(self, storage: Storage, town: str) -> None:
        self.storage = storage
        self.town = town

    def record(self, head: ChainHead, *, source: str, seen_at: float) -> bool:
        """Keep `head` if it is newer than the stored anchor; True when it was stored."""
        key = (self.town, ANCHOR, check_writer_id(head.writer))
        current = self.get(head.writer)
        if current is not None:
            if current.seq == head.seq and current.hash != head.hash:
                raise AuditConflict(
                    f"anchor {head.writer!r} #{head.seq} from {source!r} contradicts the stored one"
                )
            if current.seq >= head.seq:
                return False
        record = dict(head.to_json(), source=source, seen_at=seen_at)
        self.storage.save(key, _canonical(record))
        return True

    def get(self, writer: str) -> ChainHead | None:
        raw = self.storage.load((self.town, ANCHOR, check_writer_id(writer)))
        return None if raw is None else ChainHead.from_json(json.loads(raw))

    def all(self) -> dict[str, ChainHead]:
        heads = {}
        for _, raw in self.storage.load_range((self.town, ANCHOR)):
            head = ChainHead.from_json(json.loads(raw))
            heads[head.writer] = head
        return heads


# ---------------------------------------------------------------------------- verification


class Fault(enum.StrEnum):
    ALTERED = "altered"
    DELETED = "deleted"
    REORDERED = "reordered"
    MISPLACED = "misplaced"
    UNKNOWN_WRITER = "unknown_writer"
    CUT_TAIL = "cut_tail"
    FORKED = "forked"
    ROLLBACK = "rollback"
    RETIRED_KEY = "retired_key"


FAULT_LABELS: dict[Fault, str] = {
    Fault.ALTERED: "改ざん",
    Fault.DELETED: "削除",
    Fault.REORDERED: "順序の入れ替え・差し替え",
    Fault.MISPLACED: "別の記録の混入",
    Fault.UNKNOWN_WRITER: "書き手の鍵が不明",
    Fault.CUT_TAIL: "末尾の切り取り",
    Fault.FORKED: "確認済みの記録と不一致(書き換え)",
    Fault.ROLLBACK: "ログ全体の巻き戻し",
    Fault.RETIRED_KEY: "有効期間外の鍵による署名",
}


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """The first bad entry of one chain: its writer, its position and why."""

    writer: str
    seq: int
    fault: Fault
    detail: str

    def message(self) -> str:
        return f"書き手 {self.writer} の第{self.seq}件: {FAULT_LABELS[self.fault]}({self.detail})"

    def __str__(self) -> str:
        return self.message()


@dataclass(frozen=True, slots=True)
class ChainStatus:
    writer: str
    entries: int
    head: ChainHead
    first_time: float | None
    last_time: float | None


@dataclass(slots=True)
class VerifyReport:
    town: str
    chains: dict[str, ChainStatus] = field(default_factory=dict)
    problems: list[AuditProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> AuditProblem | None:
        return self.problems[0] if self.problems else None

    @property
    def heads(self) -> dict[str, ChainHead]:
        return {w: c.head for w, c in self.chains.items()}

    def summary(self) -> str:
        """A Japanese summary for the operator."""
        total = sum(c.entries for c in self.chains.values())
        lines = [f"監査ログの検証: 町 {self.town} — 書き手 {len(self.chains)}、記録 {total} 件"]
        times = [c.first_time for c in self.chains.values() if c.first_time is not None]
        lasts = [c.last_time for c in self.chains.values() if c.last_time is not None]
        if times and lasts:
            lines.append(f"期間: {jst_text(min(times))} 〜 {jst_text(max(lasts))}")
        if self.kinds:
            counts = "、".join(
                f"{KIND_LABELS.get(k, k)} {n}" for k, n in sorted(self.kinds.items())
            )
            lines.append(f"内訳: {counts}")
        for warning in self.warnings:
            lines.append(f"注意: {warning}")
        if self.ok:
            lines.append("結果: 異常はありません。すべての連鎖が検証できました。")
        else:
            lines.append(f"結果: 異常があります({len(self.problems)} 件の連鎖)。")
            lines.append(f"最初の異常: {self.problems[0].message()}")
            lines.extend(f"  - {p.message()}" for p in self.problems[1:])
        return "\n".join(lines)


AnchorValue = ChainHead | tuple[int, bytes]


def _anchor(writer: str, value: AnchorValue) -> ChainHead:
    if isinstance(value, ChainHead):
        return value
    seq, digest = value
    return ChainHead(writer, seq, digest)


def _lookup(writer_keys: Mapping[str, VerifyKey] | WriterLookup) -> WriterLookup:
    if isinstance(writer_keys, Mapping):
        return writer_keys.get
    return writer_keys


def verify_town(
    storage: Storage,
    keyring: KeyRing,
    writer_keys: Mapping[str, VerifyKey] | WriterLookup,
    anchors: Mapping[str, AnchorValue],
    *,
    writers: Iterable[str] | None = None,
) -> VerifyReport:
    """Check every audit chain of the key ring's town and name the first bad entry of each.
    `anchors` are heads seen by peers, the hub or in QR codes: writer → (seq, hash)."""
    town = keyring.town
    lookup = _lookup(writer_keys)
    report = VerifyReport(town)
    stored: dict[str, list[tuple[StorageKey, bytes]]] = {}
    for key, blob in storage.load_range((town, AUDIT)):
        stored.setdefault(key[2] if len(key) > 2 else "?", []).append((key, blob))
    chosen = set(stored) | set(anchors) if writers is None else set(writers)
    behind: dict[str, AuditProblem] = {}
    for writer in sorted(chosen):
        items = stored.get(writer, [])
        anchor = _anchor(writer, anchors[writer]) if writer in anchors else None
        problem, status, hashes = _verify_chain(town, writer, items, keyring, lookup, report)
        if status is not None:
            report.chains[writer] = status
        if problem is None and anchor is not None:
            head_seq = status.head.seq if status else 0
            if head_seq < anchor.seq:
                problem = AuditProblem(
                    writer,
                    head_seq + 1,
                    Fault.CUT_TAIL,
                    f"記録は第{head_seq}件までしかありませんが、第{anchor.seq}件まで"
                    "存在したことが確認されています",
                )
                behind[writer] = problem
            elif hashes.get(anchor.seq) != anchor.hash:
                problem = AuditProblem(
                    writer,
                    anchor.seq,
                    Fault.FORKED,
                    "他の場所で確認された同じ番号の記録とハッシュが一致しません",
                )
        if problem is not None:
            report.problems.append(problem)
    anchored = {w for w in anchors if w in chosen}
    if len(anchored) >= 2 and anchored == set(behind):
        report.problems = [
            AuditProblem(
                p.writer,
                p.seq,
                Fault.ROLLBACK,
                "すべての書き手の記録が、他で確認された時点より古い状態に戻っています。" + p.detail,
            )
            if p.writer in behind
            else p
            for p in report.problems
        ]
    return report


def _verify_chain(
    town: str,
    writer: str,
    items: list[tuple[StorageKey, bytes]],
    keyring: KeyRing,
    lookup: WriterLookup,
    report: VerifyReport,
) -> tuple[AuditProblem | None, ChainStatus | None, dict[int, bytes]]:
    hashes: dict[int, bytes] = {0: GENESIS}
    if not items:
        return None, None, hashes

    def done(
        problem: AuditProblem | None,
    ) -> tuple[AuditProblem | None, ChainStatus | None, dict[int, bytes]]:
        seq = max(hashes)
        status = ChainStatus(writer, seq, ChainHead(writer, seq, hashes[seq]), first, last)
        return problem, status, hashes

    first: float | None = None
    last: float | None = None
    ordered: list[tuple[int, StorageKey, bytes]] = []
    for key, blob in items:
        if len(key) != 4 or len(key[3]) != SEQ_DIGITS or not key[3].isdigit():
            return done(
                AuditProblem(writer, 0, Fault.MISPLACED, f"監査ログにない形の保存キー {key!r}")
            )
        ordered.append((int(key[3]), key, blob))
    ordered.sort()
    expected = 1
    for seq, _key, blob in ordered:
        if seq != expected:
            return done(
                AuditProblem(
                    writer,
                    expected,
                    Fault.DELETED,
                    f"第{expected}件がありません(次にあるのは第{seq}件)",
                )
            )
        try:
            named = read_header(blob)
        except BlobFormatError as exc:
            return done(AuditProblem(writer, seq, Fault.ALTERED, f"形式の検証に失敗: {exc}"))
        if named.town != town or named.writer_id != writer:
            try:
                verify_blob(blob, lookup)
            except BlobError:
                return done(AuditProblem(writer, seq, Fault.ALTERED, "署名が一致しません"))
            return done(
                AuditProblem(
                    writer,
                    seq,
                    Fault.MISPLACED,
                    f"{named.town} の書き手 {named.writer_id} の記録が置かれています",
                )
            )
        try:
            header, plaintext = open_blob(blob, keyring, lookup, max_plaintext=MAX_ENTRY_BYTES)
        except UnknownWriter:
            return done(
                AuditProblem(writer, seq, Fault.UNKNOWN_WRITER, "書き手の公開鍵がありません")
            )
        except BlobSignatureError:
            return done(AuditProblem(writer, seq, Fault.ALTERED, "署名が一致しません"))
        except (BlobFormatError, BlobDecryptError, BlobTooLarge) as exc:
            return done(AuditProblem(writer, seq, Fault.ALTERED, f"復号・形式の検証に失敗: {exc}"))
        if header.writer_seq != seq or header.document != _document(writer, seq):
            return done(
                AuditProblem(
                    writer,
                    seq,
                    Fault.REORDERED,
                    f"この位置にあるのは第{header.writer_seq}件の記録です",
                )
            )
        try:
            entry = AuditEntry.from_plaintext(plaintext)
        except AuditFormatError as exc:
            return done(AuditProblem(writer, seq, Fault.ALTERED, f"記録の形式が不正: {exc}"))
        verify_key = lookup(writer)
        if verify_key is None or not entry.verify_signature(verify_key):
            return done(AuditProblem(writer, seq, Fault.ALTERED, "記録の署名が一致しません"))
        if (entry.town, entry.writer) != (town, writer):
            return done(AuditProblem(writer, seq, Fault.MISPLACED, "別の町・書き手の記録です"))
        if entry.seq != seq:
            return done(
                AuditProblem(writer, seq, Fault.REORDERED, f"記録自体は第{entry.seq}件です")
            )
        if entry.prev != hashes[seq - 1]:
            return done(
                AuditProblem(
                    writer,
                    seq,
                    Fault.REORDERED,
                    f"直前の記録(第{seq - 1}件)のハッシュと一致しません",
                )
            )
        retired = lookup.retired_at(writer) if isinstance(lookup, WriterDirectory) else None
        if retired is not None and entry.time >= retired:
            return done(
                AuditProblem(
                    writer,
                    seq,
                    Fault.RETIRED_KEY,
                    f"{jst_text(entry.time)} の記録ですが、この鍵は {jst_text(retired)} に"
                    "再登録による交代または取消で無効になっています",
                )
            )
        if last is not None and entry.time < last:
            report.warnings.append(
                f"書き手 {writer} の第{seq}件の時刻が前の記録より前です(時計の修正の可能性)"
            )
        first = entry.time if first is None else first
        last = entry.time
        report.kinds[entry.kind] = report.kinds.get(entry.kind, 0) + 1
        hashes[seq] = entry.hash
        expected += 1
    return done(None)
