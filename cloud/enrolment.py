"""Box enrolment at the hub: one-time tokens, proof of the box's key, the box certificate.

Trust chain. The federation root stays offline (BRIEF §3). In a ceremony it certifies the
hub's **enrolment issuer** key (`shared.crypto.issue_issuer_certificate`, kind "issuer");
the hub signs box certificates with that key at enrolment, each carrying the issuer
certificate as its chain, so a peer holding only the root key checks them
(`verify_box_certificate`). The issuer's private key is sealed under the hub operator's
passphrase in `DATA/enrolment.sealed` (argon2id + XChaCha20-Poly1305), like the towns'
custody, and unsealed when the hub starts (RENKEI_HUB_PASSPHRASE, or the systemd
credential `renkei-hub-passphrase`). The hub's web process holds the issuer key only —
no town key.

    operator                       hub (this module)                      box (edge/enrolment.py)
    renkei enrolment token  ──▶  enrolment_tokens (SHA-256 only)
                                 POST /api/enrol/challenge        ◀──   (fresh nonce)
                                 {"nonce": hex, "expires_in": s}   ──▶
                                 POST /api/enrol                   ◀──   token, box key, sync
                                                                         peer id, signatures
    checks: nonce unused (replay), token known (forged), not expired/revoked/used by
    another key, both signatures over the statement; then in ONE transaction consumes the
    token and records the box; answers the certificate, the federation directory, staged
    TLS material, and writes an audit entry for the box's town.

Statement signed by the box key AND by the box's sync identity (canonical JSON after
b"renkei enrolment v1\\0"): {"protocol", "purpose": "enrol", "nonce", "token_sha256",
"box_key", "x25519", "sync_peer"}. The box key also signs b"renkei sync binding v1\\0" +
sync peer id: the binding the hub's sync endpoints check (`Registry.admit`).

Renewal (`POST /api/enrol/renew`, `renkei enroll --renew`): an enrolled, unrevoked box
whose certificate is still valid signs the same statement (purpose "renew", no token)
and receives a fresh certificate; an expired one enrols again with a token, a revoked
one with a token and a fresh key (a revoked key is never certified again).

Re-enrolment with a new key (a box whose disk was replaced takes over its name with a
fresh token): the previous key is *replaced* — kept in the registry's key history with
the period it was valid, put on the signed revocation list (so LAN peers refuse it too),
and never certified again (403 "retired"). The answer names the audit chain the new key
writes ("audit_writer"): `box:<box>` for the box's first key, `box:<box>:<16 hex of key
id>` for each later one, so the new disk's chain starts afresh instead of colliding with
the anchors of the old one (docs/audit.md §1).

Errors come back as JSON {"error": code, "message": Japanese, "message_en": English} with
400 malformed, 401 unknown token, 403 proof failed, 409 stale nonce (replay), 410 token
expired, revoked or used, 503 enrolment not configured or issuer sealed.

Tables (hub migration 2, shared/migrations.py): enrolment_settings (root, issuer,
issuer_key), enrolment_tokens, enrolled_boxes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.exceptions
from nacl.public import PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared import migrations
from shared.audit import AuditKind, AuditLog, AuditWriter, BoxKey, box_writer_id
from shared.crypto import (
    Certificate,
    CryptoError,
    EnrolmentIssuer,
    TownPublic,
    WrongPassword,
    issue_box_certificate,
    key_id,
    open_secret,
    seal_secret,
    verify_box_certificate,
    verify_issuer_certificate,
)
from shared.storage import Storage
from shared.sync.identity import verify_key_of

log = logging.getLogger(__name__)

PROTOCOL = 1
ISSUER_FILE = "enrolment.sealed"
PASSPHRASE_CREDENTIAL = "renkei-hub-passphrase"
TOKEN_BYTES = 24
DEFAULT_TOKEN_HOURS = 24.0
BOX_CERT_DAYS = 365
NONCE_TTL_S = 300.0
MAX_REQUEST_BYTES = 64 * 1024
STATEMENT_CONTEXT = b"renkei enrolment v1\x00"
BINDING_CONTEXT = b"renkei sync binding v1\x00"
BOX_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TOWN_CODE = re.compile(r"^[0-9]{5,6}$")
_SEEN_EVERY_S = 60.0


class EnrolmentError(Exception):
    """An enrolment or administration step refused; `message` is Japanese, `english` for
    the log and for IT staff abroad, `status` the HTTP status, `code` machine-readable."""

    def __init__(self, code: str, status: int, message: str, english: str) -> None:
        super().__init__(f"{message} / {english}")
        self.code = code
        self.status = status
        self.message = message
        self.english = english

    def to_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message, "message_en": self.english}


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def statement_bytes(statement: dict[str, Any]) -> bytes:
    return STATEMENT_CONTEXT + _canonical(statement)


def binding_bytes(sync_peer: str) -> bytes:
    return BINDING_CONTEXT + sync_peer.encode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def passphrase_from_environment() -> str | None:
    """The hub operator's passphrase handed to a service: RENKEI_HUB_PASSPHRASE, or the
    systemd credential (LoadCredentialEncrypted= / systemd-ask-password)."""
    value = os.environ.get("RENKEI_HUB_PASSPHRASE")
    if value:
        return value
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if folder and (Path(folder) / PASSPHRASE_CREDENTIAL).is_file():
        return (Path(folder) / PASSPHRASE_CREDENTIAL).read_text().rstrip("\n")
    return None


def _hub_db(data_dir: Path) -> Path:
    return data_dir / "hub.db"


# ---------------------------------------------------------------------------- the issuer key


def create_issuer_key(data_dir: Path, passphrase: str) -> SigningKey:
    """A new enrolment issuer key, sealed under the hub passphrase (never in plaintext)."""
    path = data_dir / ISSUER_FILE
    if path.exists():
        raise EnrolmentError(
            "exists",
            409,
            f"登録用の鍵はすでにあります: {path}",
            f"the enrolment key already exists: {path}",
        )
    key = SigningKey.generate()
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(seal_secret(bytes(key), passphrase))
    temporary.chmod(0o600)
    temporary.replace(path)
    return key


def load_issuer_key(data_dir: Path, passphrase: str) -> SigningKey:
    path = data_dir / ISSUER_FILE
    if not path.exists():
        raise EnrolmentError(
            "not-configured",
            503,
            "ハブの登録用の鍵がありません（renkei enrolment init）。",
            "the hub has no enrolment key (run renkei enrolment init)",
        )
    try:
        return SigningKey(open_secret(path.read_bytes(), passphrase))
    except (WrongPassword, CryptoError) as exc:
        raise EnrolmentError(
            "passphrase",
            503,
            "登録用の鍵を開けません。パスフレーズを確認してください。",
            "cannot open the enrolment key: wrong passphrase?",
        ) from exc


# ---------------------------------------------------------------------------- the registry


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_hash: str
    box: str
    town: str
    issued_at: float
    expires_at: float
    used_at: float | None
    used_by: str | None
    revoked_at: float | None
    tls_sealed: str | None


@dataclass(frozen=True, slots=True)
class BoxRow:
    box: str
    town: str
    box_key: str
    sync_peer: str
    certificate: str
    binding: str
    enrolled_at: float
    last_seen: float | None
    revoked_at: float | None
    revoked_reason: str | None

    def cert(self) -> Certificate:
        return Certificate.from_json(json.loads(self.certificate))

    def to_json(self) -> dict[str, Any]:
        cert = self.cert()
        return {
            "box": self.box,
            "town": self.town,
            "key_id": key_id(VerifyKey(bytes.fromhex(self.box_key))),
            "sync_peer": self.sync_peer,
            "enrolled_at": self.enrolled_at,
            "certificate_expires": cert.expires_at.isoformat(),
            "last_seen": self.last_seen,
            "revoked_at": self.revoked_at,
            "revoked_reason": self.revoked_reason,
        }


@dataclass(frozen=True, slots=True)
class BoxKeyRow:
    """A key the hub certified for a box, and when it stopped being the box's key."""

    box_key: str
    box: str
    town: str
    certificate: str
    enrolled_at: float
    replaced_at: float | None
    revoked_at: float | None


class Registry:
    """The enrolment tables in the hub's store (migrated to the newest schema on open).
    The keys ever certified for boxes, with their periods, are kept as JSON in
    enrolment_settings "box_keys" (key hex → {box, town, certificate, enrolled_at,
    replaced_at, revoked_at}), written in the same transaction as the enrolment, the
    revocation or the renewal that changes them."""

    def __init__(self, db_path: Path) -> None:
        migrations.apply(db_path, "hub")
        self.path = db_path
        self._db = sqlite3.connect(
            str(db_path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # settings
    def setting(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM enrolment_settings WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO enrolment_settings (name, value) VALUES (?, ?)",
                (name, value),
            )

    def root(self) -> VerifyKey | None:
        value = self.setting("root")
        return None if value is None else VerifyKey(bytes.fromhex(value))

    def issuer_certificate(self) -> Certificate | None:
        value = self.setting("issuer")
        return None if value is None else Certificate.from_json(json.loads(value))

    # tokens
    def add_token(self, row: TokenRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO enrolment_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.token_hash,
                    row.box,
                    row.town,
                    row.issued_at,
                    row.expires_at,
                    row.used_at,
                    row.used_by,
                    row.revoked_at,
                    row.tls_sealed,
                ),
            )

    def token(self, hashed: str) -> TokenRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM enrolment_tokens WHERE token_hash = ?", (hashed,)
            ).fetchone()
        return None if row is None else TokenRow(*row)

    def tokens(self) -> list[TokenRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM enrolment_tokens ORDER BY issued_at").fetchall()
        return [TokenRow(*r) for r in rows]

    # boxes
    def box(self, name: str) -> BoxRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM enrolled_boxes WHERE box = ?", (name,)).fetchone()
        return None if row is None else BoxRow(*row)

    def box_by_peer(self, sync_peer: str) -> BoxRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM enrolled_boxes WHERE sync_peer = ?", (sync_peer,)
            ).fetchone()
        return None if row is None else BoxRow(*row)

    def boxes(self) -> list[BoxRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM enrolled_boxes ORDER BY box").fetchall()
        return [BoxRow(*r) for r in rows]

    def consume_and_enrol(self, token: TokenRow, box: BoxRow, now: float) -> bool:
        """Use the token and record the box in one transaction; False when the token was
        used, revoked or expired meanwhile (another request won the race)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                used = self._db.execute(
                    "UPDATE enrolment_tokens SET used_at = ?, used_by = ? WHERE token_hash = ?"
                    " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
                    (now, box.box_key, token.token_hash, now),
                ).rowcount
                if used != 1:
                    self._db.execute("ROLLBACK")
                    return False
                # a replaced box (same name, new key) leaves: its sync peer id goes with it,
                # its key is retired (revocation list) and kept, with its period, for audit
                self._record_key(box, now)
                self._db.execute(
                    "DELETE FROM enrolled_boxes WHERE box = ? OR sync_peer = ?",
                    (box.box, box.sync_peer),
                )
                self._db.execute(
                    "INSERT INTO enrolled_boxes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        box.box,
                        box.town,
                        box.box_key,
                        box.sync_peer,
                        box.certificate,
                        box.binding,
                        box.enrolled_at,
                        None,
                        None,
                        None,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def revoke(self, name: str, reason: str, now: float) -> tuple[bool, int]:
        """Revoke a box's enrolment and every unused token for it: (box revoked, tokens)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            boxes = self._db.execute(
                "UPDATE enrolled_boxes SET revoked_at = ?, revoked_reason = ?"
                " WHERE box = ? AND revoked_at IS NULL",
                (now, reason, name),
            ).rowcount
            if boxes == 1:
                key, town = self._db.execute(
                    "SELECT box_key, town FROM enrolled_boxes WHERE box = ?", (name,)
                ).fetchone()
                self._add_revocation(name, town, key, reason, now)
                history = self._key_state()
                if key in history:
                    history[key]["revoked_at"] = now
                    self._save_key_state(history)
            tokens = self._db.execute(
                "UPDATE enrolment_tokens SET revoked_at = ? WHERE box = ? AND used_at IS NULL"
                " AND revoked_at IS NULL",
                (now, name),
            ).rowcount
            self._db.execute("COMMIT")
        return boxes == 1, tokens

    def _add_revocation(self, name: str, town: str, key: str, reason: str, now: float) -> None:
        """Inside a transaction: a box key joins the revocation list, whose sequence
        rises by one. Kept apart from enrolled_boxes, whose row a re-enrolment replaces,
        so a revoked key stays revoked after the box is replaced."""
        row = self._db.execute(
            "SELECT value FROM enrolment_settings WHERE name = 'revocations'"
        ).fetchone()
        state: dict[str, Any] = json.loads(row[0]) if row else {"sequence": 0, "revoked": []}
        state["sequence"] += 1
        state["issued_at"] = now
        state["revoked"].append(
            {"box": name, "town": town, "key": key, "revoked_at": now, "reason": reason}
        )
        self._db.execute(
            "INSERT OR REPLACE INTO enrolment_settings (name, value) VALUES ('revocations', ?)",
            (json.dumps(state, ensure_ascii=False),),
        )

    # the history of certified box keys
    def _key_state(self) -> dict[str, dict[str, Any]]:
        row = self._db.execute(
            "SELECT value FROM enrolment_settings WHERE name = 'box_keys'"
        ).fetchone()
        return json.loads(row[0]) if row else {}

    def _save_key_state(self, state: dict[str, dict[str, Any]]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO enrolment_settings (name, value) VALUES ('box_keys', ?)",
            (json.dumps(state, ensure_ascii=False),),
        )

    def _record_key(self, box: BoxRow, now: float) -> None:
        """Inside consume_and_enrol's transaction: keep the newly certified key with its
        certificate; every other unretired key of the same box is replaced now and joins
        the revocation list (LAN peers then refuse it, as the hub does)."""
        state = self._key_state()
        for key, item in state.items():
            if item["box"] == box.box and key != box.box_key and item["replaced_at"] is None:
                item["replaced_at"] = now
                if item["revoked_at"] is None:
                    reason = f"box {box.box!r} was re-enrolled with another key"
                    self._add_revocation(box.box, item["town"], key, reason, now)
        current = self._db.execute(
            "SELECT box_key, town, certificate, enrolled_at, revoked_at FROM enrolled_boxes"
            " WHERE box = ?",
            (box.box,),
        ).fetchone()
        if current is not None and current[0] != box.box_key and current[0] not in state:
            # enrolled before the hub kept this history: its period starts at its enrolment
            state[current[0]] = {
                "box": box.box, "town": current[1], "certificate": current[2],
                "enrolled_at": current[3], "replaced_at": now, "revoked_at": current[4],
            }  # fmt: skip
            if current[4] is None:
                reason = f"box {box.box!r} was re-enrolled with another key"
                self._add_revocation(box.box, current[1], current[0], reason, now)
        item = state.setdefault(
            box.box_key,
            {"box": box.box, "town": box.town, "enrolled_at": box.enrolled_at,
             "replaced_at": None, "revoked_at": None},
        )  # fmt: skip
        item["certificate"] = box.certificate
        self._save_key_state(state)

    def box_keys(self) -> list[BoxKeyRow]:
        """Every key the hub certified for a box, oldest first, with its period; boxes
        enrolled before the hub kept this history appear with their current key."""
        with self._lock:
            state = self._key_state()
            rows = self._db.execute(
                "SELECT box_key, box, town, certificate, enrolled_at, revoked_at"
                " FROM enrolled_boxes"
            ).fetchall()
        for key, box, town, certificate, enrolled_at, revoked_at in rows:
            state.setdefault(
                key,
                {"box": box, "town": town, "certificate": certificate,
                 "enrolled_at": enrolled_at, "replaced_at": None, "revoked_at": revoked_at},
            )  # fmt: skip
        keys = [
            BoxKeyRow(
                key,
                i["box"],
                i["town"],
                i["certificate"],
                i["enrolled_at"],
                i["replaced_at"],
                i["revoked_at"],
            )
            for key, i in state.items()
        ]
        return sorted(keys, key=lambda k: (k.box, k.enrolled_at))

    def audit_box_keys(self) -> dict[str, list[BoxKey]]:
        """What `renkei audit verify` checks box entries with: each box's certified keys,
        oldest first, with their periods (shared.audit.WriterDirectory). A key counts only
        when its certificate chains to the pinned root (valid when it was issued) and
        certifies exactly that key for that box: a row forged into the registry certifies
        nothing, and a hub with no root pinned knows no box key."""
        root = self.root()
        boxes: dict[str, list[BoxKey]] = {}
        if root is None:
            return boxes
        for row in self.box_keys():
            try:
                cert = Certificate.from_json(json.loads(row.certificate))
                verify_box_certificate(cert, root, now=cert.issued_at)
            except (CryptoError, ValueError, KeyError, TypeError) as exc:
                log.warning("box %s: a key whose certificate does not verify: %s", row.box, exc)
                continue
            if cert.subject != row.box or bytes(cert.verify_key).hex() != row.box_key:
                log.warning("box %s: a certificate for another box or key", row.box)
                continue
            boxes.setdefault(row.box, []).append(
                BoxKey(cert.verify_key, row.enrolled_at, row.replaced_at, row.revoked_at)
            )
        return boxes

    def audit_writer_of(self, box: str, key: str) -> str:
        """The audit chain a box key writes: `box:<box>` for the first key certified for
        the box, `box:<box>:<16 hex of key id>` for a later one (a new disk, a new chain)."""
        keys = [k for k in self.box_keys() if k.box == box]
        if not keys or keys[0].box_key == key:
            return box_writer_id(box)
        return box_writer_id(box, key_id(VerifyKey(bytes.fromhex(key)))[:16])

    def retired(self, key: str) -> bool:
        """A key replaced by a re-enrolment or revoked: never certified again."""
        return any(
            k.box_key == key and (k.replaced_at is not None or k.revoked_at is not None)
            for k in self.box_keys()
        ) or any(item["key"] == key for item in self.revocations()["revoked"])

    def revocations(self) -> dict[str, Any]:
        """{"sequence", "issued_at", "revoked": [...]}; sequence 0 when none was revoked."""
        value = self.setting("revocations")
        return json.loads(value) if value else {"sequence": 0, "issued_at": 0.0, "revoked": []}

    def renew(self, name: str, certificate: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE enrolled_boxes SET certificate = ? WHERE box = ? AND revoked_at IS NULL",
                (certificate, name),
            )
            row = self._db.execute(
                "SELECT box_key FROM enrolled_boxes WHERE box = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            state = self._key_state()
            if row is not None and row[0] in state:
                state[row[0]]["certificate"] = certificate
                self._save_key_state(state)
            self._db.execute("COMMIT")

    def touch(self, name: str, now: float) -> None:
        if now - self._seen.get(name, 0.0) < _SEEN_EVERY_S:
            return
        self._seen[name] = now
        with self._lock:
            self._db.execute("UPDATE enrolled_boxes SET last_seen = ? WHERE box = ?", (now, name))

    # admission of sync peers
    def admit(self, sync_peer: str, now: float) -> bool:
        """A sync peer is admitted when it is the sync identity of an enrolled, unrevoked
        box whose certificate chains to the pinned root and is valid now, bound to that
        identity by the certified box key. Checked on every request: a revocation or an
        expiry takes effect at once."""
        root = self.root()
        row = self.box_by_peer(sync_peer)
        if root is None or row is None or row.revoked_at is not None:
            return False
        try:
            cert = verify_box_certificate(row.cert(), root, now=datetime.fromtimestamp(now, UTC))
            if bytes(cert.verify_key).hex() != row.box_key:
                return False
            cert.verify_key.verify(binding_bytes(sync_peer), bytes.fromhex(row.binding))
        except (CryptoError, ValueError, nacl.exceptions.BadSignatureError) as exc:
            log.warning("sync peer of box %s refused: %s", row.box, exc)
            return False
        self.touch(row.box, now)
        return True


# ---------------------------------------------------------------------------- administration


def audit_writer(issuer_key: SigningKey, role: str) -> AuditWriter:
    """The hub's enrolment entries are signed by the issuer key; `role` keeps the web
    process ("enrol") and the operator's commands ("admin") on separate chains."""
    return AuditWriter(f"hub-{role}:{key_id(issuer_key.verify_key)[:16]}", issuer_key)


def record(
    storage: Storage, writer: AuditWriter, town: str, kind: AuditKind, details: dict[str, Any]
) -> None:
    """An audit entry sealed to the town (needs its public key only); the writer's key is
    listed in the town's writer directory so `renkei audit verify` checks it."""
    raw = storage.load((town, "public"))
    if raw is None:
        log.warning("no public key for town %s at the hub: audit entry %s not written", town, kind)
        return
    storage.save((town, "audit-writer", writer.writer_id), bytes(writer.verify_key).hex().encode())
    AuditLog(storage, TownPublic.from_json(json.loads(raw))).append(
        writer, kind, details, time.time()
    )


def issue_token(
    registry: Registry,
    storage: Storage,
    issuer_key: SigningKey,
    *,
    box: str,
    town: str,
    hours: float = DEFAULT_TOKEN_HOURS,
    tls: dict[str, str] | None = None,
    now: float | None = None,
) -> str:
    """A one-time token for `box` of `town`, valid `hours`; only its hash is stored.
    `tls` ({"cert", "key"[, "ca"]} PEM text issued in the ceremony) is staged sealed to
    the issuer key and handed to the box at enrolment."""
    now = time.time() if now is None else now
    if not BOX_NAME.match(box):
        raise EnrolmentError(
            "box-name",
            400,
            "ボックス名は英小文字・数字・ハイフン（63 文字まで）で指定してください。",
            "a box name is lower-case letters, digits and hyphens (at most 63)",
        )
    if not TOWN_CODE.match(town) or storage.load((town, "public")) is None:
        raise EnrolmentError(
            "town",
            400,
            f"町村 {town} の鍵がハブにありません（先に取込を行ってください）。",
            f"the hub holds no keys for town {town} (import it first)",
        )
    if not 0 < hours <= 24 * 14:
        raise EnrolmentError(
            "hours",
            400,
            "有効期限は 14 日以内で指定してください。",
            "a token is valid for at most 14 days",
        )
    if registry.issuer_certificate() is None:
        raise EnrolmentError(
            "not-configured",
            503,
            "登録用の鍵が連合ルートに認証されていません（renkei enrolment install）。",
            "the enrolment key is not certified by the federation root yet",
        )
    sealed = None
    if tls is not None:
        recipient = issuer_key.verify_key.to_curve25519_public_key()
        sealed = SealedBox(recipient).encrypt(_canonical(dict(tls))).hex()
    token = "rk1-" + secrets.token_urlsafe(TOKEN_BYTES)
    registry.add_token(
        TokenRow(token_hash(token), box, town, now, now + hours * 3600, None, None, None, sealed)
    )
    record(
        storage,
        audit_writer(issuer_key, "admin"),
        town,
        AuditKind.ENROLMENT_TOKEN,
        {"box": box, "expires_at": now + hours * 3600, "tls_staged": tls is not None},
    )
    return token


def revoke_box(
    registry: Registry, storage: Storage, issuer_key: SigningKey, box: str, reason: str
) -> tuple[bool, int]:
    row = registry.box(box)
    revoked, tokens = registry.revoke(box, reason, time.time())
    if not revoked and not tokens:
        raise EnrolmentError(
            "unknown-box",
            404,
            f"ボックス {box} は登録されていないか、すでに取り消されています。",
            f"box {box} is not enrolled or already revoked",
        )
    town = row.town if row else next(t.town for t in registry.tokens() if t.box == box)
    record(
        storage,
        audit_writer(issuer_key, "admin"),
        town,
        AuditKind.BOX_REVOKED,
        {"box": box, "reason": reason, "tokens_revoked": tokens},
    )
    return revoked, tokens


# ---------------------------------------------------------------------------- the service


def _refuse(code: str, status: int, message: str, english: str) -> EnrolmentError:
    return EnrolmentError(code, status, message, english)


class HubEnrolment:
    """The hub process's enrolment endpoints and sync admission (cloud/app.py holds one)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        passphrase: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.registry = Registry(_hub_db(data_dir))
        self.issuer: EnrolmentIssuer | None = None
        self.unavailable: EnrolmentError | None = None
        self._nonces: dict[str, float] = {}
        self._nonce_lock = threading.Lock()
        self.reload(passphrase)

    def reload(self, passphrase: str | None = None) -> None:
        """Unseal the issuer key (when configured) with the operator's passphrase."""
        self.issuer, self.unavailable = None, None
        certificate = self.registry.issuer_certificate()
        if certificate is None or not (self.data_dir / ISSUER_FILE).exists():
            self.unavailable = _refuse(
                "not-configured",
                503,
                "このハブでは登録を受け付けていません（登録用の鍵が未設定）。",
                "this hub does not enrol boxes (no certified enrolment key)",
            )
            return
        passphrase = passphrase or passphrase_from_environment()
        if passphrase is None:
            self.unavailable = _refuse(
                "sealed",
                503,
                "登録用の鍵が開かれていません（運用者のパスフレーズが必要です）。",
                "the enrolment key is sealed: the operator's passphrase was not given",
            )
            log.warning("enrolment key sealed: no passphrase given; enrolment is off")
            return
        try:
            self.issuer = EnrolmentIssuer(load_issuer_key(self.data_dir, passphrase), certificate)
        except (EnrolmentError, CryptoError) as exc:
            self.unavailable = _refuse(
                "sealed", 503, "登録用の鍵を開けません。", f"cannot open the enrolment key: {exc}"
            )
            log.error("enrolment key not opened: %s", exc)

    def close(self) -> None:
        self.registry.close()

    # ------------------------------------------------------------------ sync admission

    def admission(self, fallback: Callable[[str], bool]) -> Callable[[str], bool]:
        """The hub's sync authorisation: with a federation root pinned, only enrolled
        certificates (`Registry.admit`); without one (a development hub with no
        federation), `fallback` — the stored peer ids of earlier releases."""

        def authorize(peer_id: str) -> bool:
            if self.registry.setting("root") is None:
                return fallback(peer_id)
            return self.registry.admit(peer_id, self.clock())

        return authorize

    # ------------------------------------------------------------------ endpoints

    def new_nonce(self) -> str:
        now = time.monotonic()
        nonce = secrets.token_hex(32)
        with self._nonce_lock:
            for old in [n for n, t in self._nonces.items() if t < now]:
                del self._nonces[old]
            if len(self._nonces) > 4096:
                self._nonces.pop(next(iter(self._nonces)))
            self._nonces[nonce] = now + NONCE_TTL_S
        return nonce

    def _consume_nonce(self, nonce: str) -> bool:
        with self._nonce_lock:
            expires = self._nonces.pop(nonce, None)
        return expires is not None and expires >= time.monotonic()

    def signed_revocations(self) -> dict[str, Any] | None:
        """The revocation list signed by the enrolment issuer (edge/revocations.py has the
        format), or None while the issuer key is sealed."""
        from edge.revocations import sign_list

        if self.issuer is None:
            return None
        state = self.registry.revocations()
        return sign_list(
            self.issuer.signing_key,
            self.issuer.certificate,
            state["sequence"],
            datetime.fromtimestamp(state["issued_at"], UTC),
            (
                {"box": r["box"], "town": r["town"], "key": r["key"], "revoked_at": r["revoked_at"]}
                for r in state["revoked"]
            ),
        )

    def directory(self, storage: Storage) -> dict[str, Any]:
        """The federation directory a box receives: the hub's writer key (pinned by the
        box), every town's public keys and name, the root and the issuer certificate."""
        from cloud.store import TownStore, known_towns

        writer = storage.load(("federation", "hub-writer"))
        towns, names = {}, {}
        for code in known_towns(storage):
            public = storage.load((code, "public"))
            if public is not None:
                towns[code] = json.loads(public)
                names[code] = (TownStore(storage, code).town_settings() or {}).get("name", code)
        root, issuer = self.registry.setting("root"), self.registry.issuer_certificate()
        return {
            "hub_writer": writer.decode() if writer else None,
            "towns": towns,
            "names": names,
            "federation_root": root,
            "issuer": issuer.to_json() if issuer else None,
        }

    def enrol(self, request: dict[str, Any], storage: Storage) -> dict[str, Any]:
        """Check an enrolment request and enrol the box (see the module docstring)."""
        if self.issuer is None:
            assert self.unavailable is not None
            raise self.unavailable
        try:
            protocol = int(request["protocol"])
            nonce, token = str(request["nonce"]), str(request["token"])
            box_key = VerifyKey(bytes.fromhex(str(request["box_key"])))
            sealing = PublicKey(bytes.fromhex(str(request["x25519"])))
            sync_peer = str(request["sync_peer"])
            signature = bytes.fromhex(str(request["signature"]))
            sync_signature = bytes.fromhex(str(request["sync_signature"]))
            binding = bytes.fromhex(str(request["binding"]))
        except (KeyError, TypeError, ValueError, nacl.exceptions.CryptoError) as exc:
            raise _refuse(
                "request",
                400,
                "登録要求の形式が正しくありません。",
                f"malformed enrolment request: {exc}",
            ) from exc
        if protocol != PROTOCOL:
            raise _refuse(
                "protocol",
                400,
                "この版の renkei enroll には対応していません。",
                f"enrolment protocol {protocol} is not spoken here",
            )
        if not self._consume_nonce(nonce):
            raise _refuse(
                "nonce",
                409,
                "この登録要求は古いか、すでに使われたものです（再送は受け付けません）。"
                "もう一度 renkei enroll を実行してください。",
                "stale or replayed enrolment request; run renkei enroll again",
            )
        row = self.registry.token(token_hash(token))
        if row is None:
            log.warning("enrolment with an unknown token refused")
            raise _refuse(
                "token",
                401,
                "登録トークンが正しくありません。ハブの運用者に確認してください。",
                "unknown enrolment token",
            )
        now = self.clock()
        writer = audit_writer(self.issuer.signing_key, "enrol")

        def refused(error: EnrolmentError) -> EnrolmentError:
            record(
                storage,
                writer,
                row.town,
                AuditKind.ENROLMENT_REFUSED,
                {"box": row.box, "reason": error.code, "key_id": key_id(box_key)},
            )
            log.warning("enrolment of %s refused: %s", row.box, error.english)
            return error

        statement = {
            "protocol": protocol,
            "purpose": "enrol",
            "nonce": nonce,
            "token_sha256": row.token_hash,
            "box_key": bytes(box_key).hex(),
            "x25519": bytes(sealing).hex(),
            "sync_peer": sync_peer,
        }
        peer_key = verify_key_of(sync_peer)
        try:
            box_key.verify(statement_bytes(statement), signature)
            if peer_key is None:
                raise ValueError("sync peer id is not self-certifying")
            peer_key.verify(statement_bytes(statement), sync_signature)
            box_key.verify(binding_bytes(sync_peer), binding)
        except (ValueError, nacl.exceptions.BadSignatureError) as exc:
            raise refused(
                _refuse(
                    "proof",
                    403,
                    "ボックスの鍵を確認できませんでした（署名が一致しません）。",
                    f"the box did not prove possession of its keys: {exc}",
                )
            ) from exc
        if bytes(box_key.to_curve25519_public_key()) != bytes(sealing):
            raise refused(
                _refuse(
                    "proof",
                    403,
                    "ボックスの鍵の組が一致しません。",
                    "the X25519 key is not the box key's",
                )
            )
        if row.revoked_at is not None:
            raise refused(
                _refuse(
                    "revoked",
                    410,
                    "この登録トークンは取り消されています。",
                    "this enrolment token was revoked",
                )
            )
        if row.used_at is not None:
            existing = self.registry.box(row.box)
            if (
                row.used_by == bytes(box_key).hex()
                and existing
                and existing.revoked_at is None
                and existing.box_key == row.used_by
            ):
                # the same box asking again (its first answer was lost): same certificate
                return self._answer(existing, row, storage)
            raise refused(
                _refuse(
                    "used",
                    410,
                    "この登録トークンはすでに別のボックスの登録に使われました。",
                    "this enrolment token was already used by another box key",
                )
            )
        if self.registry.retired(bytes(box_key).hex()):
            raise refused(
                _refuse(
                    "retired",
                    403,
                    "この鍵は交代または取消で無効になっています。新しい鍵で登録してください。",
                    "this box key was replaced or revoked: enrol with a fresh key",
                )
            )
        if row.expires_at <= now:
            raise refused(
                _refuse(
                    "expired",
                    410,
                    "この登録トークンは有効期限が切れています。"
                    "ハブの運用者に新しいトークンを依頼してください。",
                    "this enrolment token has expired",
                )
            )
        moment = datetime.fromtimestamp(now, UTC)
        certificate = issue_box_certificate(
            self.issuer,
            row.box,
            town=row.town,
            sealing_key=sealing,
            verify_key=box_key,
            issued_at=moment - timedelta(minutes=5),
            expires_at=moment + timedelta(days=BOX_CERT_DAYS),
        )
        replaced = self.registry.box(row.box)
        box = BoxRow(
            row.box,
            row.town,
            bytes(box_key).hex(),
            sync_peer,
            json.dumps(certificate.to_json()),
            binding.hex(),
            now,
            None,
            None,
            None,
        )
        if not self.registry.consume_and_enrol(row, box, now):
            raise refused(
                _refuse(
                    "used",
                    410,
                    "この登録トークンはすでに使われました。",
                    "the token was used meanwhile",
                )
            )
        record(
            storage,
            writer,
            row.town,
            AuditKind.BOX_ENROLLED,
            {
                "box": row.box,
                "key_id": key_id(box_key),
                "sync_peer": sync_peer,
                "certificate_expires": certificate.expires_at.isoformat(),
                "replaced_key_id": key_id(VerifyKey(bytes.fromhex(replaced.box_key)))
                if replaced and replaced.box_key != box.box_key
                else None,
            },
        )
        log.info("box %s of %s enrolled (key %s)", row.box, row.town, key_id(box_key))
        return self._answer(box, row, storage)

    def renew(self, request: dict[str, Any], storage: Storage) -> dict[str, Any]:
        """A fresh certificate for an enrolled box that proves its keys, while its current
        certificate is still valid and not revoked (no token: the certificate is the
        credential). An expired box enrols again with a new token; a revoked one also
        needs a fresh key."""
        if self.issuer is None:
            assert self.unavailable is not None
            raise self.unavailable
        try:
            nonce = str(request["nonce"])
            box_key = VerifyKey(bytes.fromhex(str(request["box_key"])))
            sync_peer = str(request["sync_peer"])
            signature = bytes.fromhex(str(request["signature"]))
            sync_signature = bytes.fromhex(str(request["sync_signature"]))
        except (KeyError, TypeError, ValueError, nacl.exceptions.CryptoError) as exc:
            raise _refuse(
                "request", 400, "更新要求の形式が正しくありません。", f"malformed renewal: {exc}"
            ) from exc
        if not self._consume_nonce(nonce):
            raise _refuse(
                "nonce",
                409,
                "この更新要求は古いか、すでに使われたものです（再送は受け付けません）。",
                "stale or replayed renewal request",
            )
        row = self.registry.box_by_peer(sync_peer)
        if row is None or row.box_key != bytes(box_key).hex():
            raise _refuse(
                "unenrolled",
                403,
                "このボックスは登録されていません。登録トークンで登録してください。",
                "this box is not enrolled: enrol it with a token",
            )
        writer = audit_writer(self.issuer.signing_key, "enrol")
        if row.revoked_at is not None:
            record(
                storage,
                writer,
                row.town,
                AuditKind.ENROLMENT_REFUSED,
                {"box": row.box, "reason": "revoked", "renewal": True},
            )
            raise _refuse(
                "revoked",
                410,
                "このボックスの登録は取り消されています。",
                "this box's enrolment was revoked",
            )
        statement = {
            "protocol": PROTOCOL,
            "purpose": "renew",
            "nonce": nonce,
            "token_sha256": "",
            "box_key": row.box_key,
            "x25519": bytes(box_key.to_curve25519_public_key()).hex(),
            "sync_peer": sync_peer,
        }
        peer_key = verify_key_of(sync_peer)
        try:
            box_key.verify(statement_bytes(statement), signature)
            if peer_key is None:
                raise ValueError("sync peer id is not self-certifying")
            peer_key.verify(statement_bytes(statement), sync_signature)
        except (ValueError, nacl.exceptions.BadSignatureError) as exc:
            raise _refuse(
                "proof",
                403,
                "ボックスの鍵を確認できませんでした（署名が一致しません）。",
                f"the box did not prove possession of its keys: {exc}",
            ) from exc
        now = self.clock()
        moment = datetime.fromtimestamp(now, UTC)
        root = self.registry.root()
        try:
            if root is None:
                raise CryptoError("no federation root pinned")
            current = verify_box_certificate(row.cert(), root, now=moment)
        except CryptoError as exc:
            raise _refuse(
                "expired",
                410,
                "登録証明書の期限が切れています。新しい登録トークンで登録し直してください。",
                f"the box certificate is no longer valid: {exc}",
            ) from exc
        certificate = issue_box_certificate(
            self.issuer,
            row.box,
            town=row.town,
            sealing_key=current.sealing_key,
            verify_key=current.verify_key,
            issued_at=moment - timedelta(minutes=5),
            expires_at=moment + timedelta(days=BOX_CERT_DAYS),
        )
        self.registry.renew(row.box, json.dumps(certificate.to_json()))
        record(
            storage,
            writer,
            row.town,
            AuditKind.BOX_ENROLLED,
            {
                "box": row.box,
                "key_id": key_id(box_key),
                "renewal": True,
                "certificate_expires": certificate.expires_at.isoformat(),
            },
        )
        renewed = self.registry.box(row.box)
        assert renewed is not None
        return self._answer(renewed, None, storage)

    def _answer(self, box: BoxRow, token: TokenRow | None, storage: Storage) -> dict[str, Any]:
        tls = None
        if token is not None and token.tls_sealed and self.issuer is not None:
            private = self.issuer.signing_key.to_curve25519_private_key()
            tls = json.loads(SealedBox(private).decrypt(bytes.fromhex(token.tls_sealed)))
        return {
            "protocol": PROTOCOL,
            "box": box.box,
            "town": box.town,
            "certificate": json.loads(box.certificate),
            "audit_writer": self.registry.audit_writer_of(box.box, box.box_key),
            "directory": self.directory(storage),
            "tls": tls,
            "revocations": self.signed_revocations(),
        }

    def routes(self) -> list[Route]:
        async def challenge(request: Request) -> JSONResponse:
            if self.issuer is None:
                assert self.unavailable is not None
                return JSONResponse(self.unavailable.to_json(), self.unavailable.status)
            return JSONResponse(
                {"protocol": PROTOCOL, "nonce": self.new_nonce(), "expires_in": NONCE_TTL_S},
                headers={"cache-control": "no-store"},
            )

        async def revocations(request: Request) -> JSONResponse:
            signed = self.signed_revocations()
            if signed is None:
                assert self.unavailable is not None
                return JSONResponse(self.unavailable.to_json(), self.unavailable.status)
            return JSONResponse(signed, headers={"cache-control": "no-store"})

        Handler = Callable[[dict[str, Any], Storage], dict[str, Any]]

        def endpoint(handle: Handler) -> Callable[[Request], Any]:
            async def answer(request: Request) -> JSONResponse:
                try:
                    body = await request.body()
                    if len(body) > MAX_REQUEST_BYTES:
                        raise _refuse("request", 413, "要求が大きすぎます。", "request too large")
                    try:
                        data = json.loads(body)
                        if not isinstance(data, dict):
                            raise ValueError("not an object")
                    except ValueError as exc:
                        raise _refuse(
                            "request",
                            400,
                            "要求の形式が正しくありません。",
                            f"not a JSON object: {exc}",
                        ) from exc
                    result = await run_in_threadpool(handle, data, request.app.state.storage)
                except EnrolmentError as exc:
                    return JSONResponse(exc.to_json(), exc.status)
                return JSONResponse(result, headers={"cache-control": "no-store"})

            return answer

        return [
            Route("/api/enrol/challenge", challenge, methods=["POST"]),
            Route("/api/enrol", endpoint(self.enrol), methods=["POST"]),
            Route("/api/enrol/renew", endpoint(self.renew), methods=["POST"]),
            Route("/api/revocations", revocations, methods=["GET"]),
        ]


def verify_issuer_for(registry: Registry, cert: Certificate) -> Certificate:
    """Check an issuer certificate from the ceremony before installing it: signed by the
    pinned root, valid now, for the key `init` made."""
    root = registry.root()
    pending = registry.setting("issuer_key")
    if root is None or pending is None:
        raise EnrolmentError(
            "not-configured",
            400,
            "先に renkei enrolment init を実行してください。",
            "run renkei enrolment init first",
        )
    try:
        verify_issuer_certificate(cert, root, now=datetime.now(UTC))
    except CryptoError as exc:
        raise EnrolmentError(
            "certificate",
            400,
            f"連合ルートの証明書を確認できません: {exc}",
            f"the issuer certificate does not verify: {exc}",
        ) from exc
    if bytes(cert.verify_key).hex() != pending:
        raise EnrolmentError(
            "certificate",
            400,
            "この証明書はこのハブの登録用の鍵のものではありません。",
            "the certificate is for another key",
        )
    return cert
