"""Enrolling a box with the hub (`renkei enroll`): a one-time token in, a certificate out.

The box keeps one identity key, `DATA/box.key` (edge/boxkey.py; its X25519 half is
derived from it), and its sync identity in `DATA/replica.db` (shared/sync/replica.py).
Enrolment asks the hub for a nonce, signs a statement (nonce, token hash, keys, sync peer
id) with both keys, and receives (cloud/enrolment.py has the wire format):

- the box certificate, signed by the hub's enrolment issuer and chained to the federation
  root → `DATA/box.cert.json` (what /api/identity and discovery present to peers);
- the federation directory → the hub's writer key pinned in `replica.db` (instead of
  trusting it on first contact), the towns and their names, and `DATA/federation.json`
  (hub URL, root key, box id, town, TLS folder — read by `renkei box` and the alerts);
- the TLS server certificate and key staged at the hub, or taken from `--from DIR` (the
  ceremony's USB stick) → `TLS/server.crt`, `TLS/server.key`.
- the audit chain the box key writes (`box:<box>`, or `box:<box>:<16 hex of key id>`
  when the box was re-enrolled with a new key) → `DATA/federation.json` "audit_writer";
- the federation's signed revocation list (edge/revocations.py) → `DATA/revocations.json`,
  when newer than the one held.

Nothing is trusted because the hub said so: the certificate must chain to the root key
pinned on the box (/etc/renkei/federation-root.pub, `--root`), certify this box's own
keys, and name the box and town the answer names; the TLS certificate must match its key
and chain to the federation CA when one is given. Everything is checked before the first
file is written; files are then written atomically, the certificate last, and a failure
puts back what was there before — no half-enrolled box.

Errors: `EnrolError`, whose `message` is Japanese and `english` English.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from nacl.signing import SigningKey, VerifyKey

from cloud.enrolment import PROTOCOL, binding_bytes, statement_bytes
from edge.boxkey import box_signing_key, own_writer_ids
from edge.identity_api import CERT_FILE, read_enrolment
from edge.revocations import FILE as REVOCATIONS_FILE
from edge.revocations import RevocationError, RevocationStore, canonical, verify_list
from edge.tls import CERT_FILE as TLS_CERT
from edge.tls import KEY_FILE as TLS_KEY
from shared import migrations
from shared.audit import box_writer_id
from shared.crypto import Certificate, CryptoError, verify_box_certificate
from shared.storage import SqliteStorage
from shared.sync.identity import Identity
from shared.sync.replica import load_or_create_identity

FEDERATION_FILE = "federation.json"
DISCOVERY_FILE = "discovery.json"
DEFAULT_ROOT_FILE = Path("/etc/renkei/federation-root.pub")
DEFAULT_CA_FILE = Path("/etc/renkei/federation-ca.crt")


class EnrolError(Exception):
    def __init__(self, message: str, english: str) -> None:
        super().__init__(f"{message} / {english}")
        self.message = message
        self.english = english


@dataclass(frozen=True, slots=True)
class Enrolled:
    box: str
    town: str
    certificate: Certificate
    hub_writer: str

    def to_json(self) -> dict[str, Any]:
        return {
            "town": self.town,
            "box_id": self.box,
            "certificate_expires": self.certificate.expires_at.isoformat(),
            "hub_writer": self.hub_writer,
        }


def load_root(value: str | None) -> VerifyKey:
    """The pinned federation root: 64 hex digits, or a file holding them (default
    /etc/renkei/federation-root.pub)."""
    text = value or ""
    path = Path(text) if text else DEFAULT_ROOT_FILE
    if len(text) != 64 and path.is_file():
        text = path.read_text().strip()
    try:
        raw = bytes.fromhex(text)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
    except ValueError as exc:
        raise EnrolError(
            "連合ルートの公開鍵がありません（/etc/renkei/federation-root.pub または --root）。",
            f"no federation root key pinned ({path} or --root): {exc}",
        ) from exc
    return VerifyKey(raw)


def federation_settings(data_dir: Path) -> dict[str, Any]:
    """What enrolment recorded in `DATA/federation.json` ({} before enrolment)."""
    path = data_dir / FEDERATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def enrolled_box_id(data_dir: Path) -> str:
    """The box id the box is enrolled as, if its certificate is for its own key."""
    key_file = data_dir / "box.key"
    box = str(federation_settings(data_dir).get("box", ""))
    if not box or not key_file.exists():
        return ""
    cert = read_enrolment(data_dir, SigningKey(key_file.read_bytes()), box)
    return cert.subject if cert else ""


def _error_of(response: httpx.Response) -> EnrolError:
    try:
        data = response.json()
        return EnrolError(str(data["message"]), str(data.get("message_en", data.get("error"))))
    except (ValueError, KeyError, TypeError):
        return EnrolError(
            f"ハブが登録を拒否しました（HTTP {response.status_code}）。",
            f"the hub refused enrolment (HTTP {response.status_code})",
        )


def _check_tls(
    tls: dict[str, str], ca_pem: bytes | None, now: datetime
) -> tuple[bytes, bytes, bytes | None]:
    try:
        cert_pem, key_pem = tls["cert"].encode(), tls["key"].encode()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (KeyError, ValueError, TypeError) as exc:
        raise EnrolError(
            "TLS 証明書または鍵が読めません。", f"unreadable TLS material: {exc}"
        ) from exc
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise EnrolError(
            "TLS 証明書と鍵が一致しません。", "the TLS key does not match its certificate"
        )
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise EnrolError("TLS 証明書の有効期間外です。", "the TLS certificate is not valid now")
    # the CA pinned on the box decides; the one handed over only where none is pinned
    ca = ca_pem if ca_pem is not None else (tls["ca"].encode() if tls.get("ca") else None)
    if ca is not None:
        try:
            authority = x509.load_pem_x509_certificate(ca)
            cert.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise EnrolError(
                "TLS 証明書が連合の認証局（CA）で発行されたものではありません。",
                f"the TLS certificate is not issued by the federation CA: {exc}",
            ) from exc
    return cert_pem, key_pem, ca


def _from_dir(folder: Path | None) -> dict[str, str] | None:
    if folder is None or not (folder / TLS_CERT).is_file() or not (folder / TLS_KEY).is_file():
        return None
    tls = {"cert": (folder / TLS_CERT).read_text(), "key": (folder / TLS_KEY).read_text()}
    if (folder / "federation-ca.crt").is_file():
        tls["ca"] = (folder / "federation-ca.crt").read_text()
    return tls


class _Files:
    """Atomic writes that can be undone (the previous content is kept until commit)."""

    def __init__(self) -> None:
        self._undo: list[tuple[Path, bytes | None, int]] = []

    def write(self, path: Path, data: bytes, mode: int) -> None:
        old = path.read_bytes() if path.exists() else None
        old_mode = path.stat().st_mode & 0o777 if path.exists() else mode
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._undo.append((path, old, old_mode))

    def undo(self) -> None:
        for path, old, mode in reversed(self._undo):
            with contextlib.suppress(OSError):
                if old is None:
                    path.unlink()
                else:
                    path.write_bytes(old)
                    path.chmod(mode)


def _client(hub_url: str, ca_pem: bytes | None, timeout_s: float) -> httpx.Client:
    verify: ssl.SSLContext | bool = True
    if hub_url.startswith("https://") and ca_pem is not None:
        verify = ssl.create_default_context(cadata=ca_pem.decode())
    return httpx.Client(base_url=hub_url, timeout=timeout_s, verify=verify)


def _ask(
    hub_url: str,
    path: str,
    key: SigningKey,
    identity: Identity,
    token: str | None,
    ca_pem: bytes | None,
    timeout_s: float,
) -> dict[str, Any]:
    """Nonce, signed statement, answer (POST /api/enrol or /api/enrol/renew)."""
    try:
        with _client(hub_url, ca_pem, timeout_s) as client:
            challenge = client.post("/api/enrol/challenge")
            if challenge.status_code != 200:
                raise _error_of(challenge)
            nonce = str(challenge.json()["nonce"])
            sealing = key.verify_key.to_curve25519_public_key()
            statement = {
                "protocol": PROTOCOL,
                "purpose": "enrol" if token is not None else "renew",
                "nonce": nonce,
                "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else "",
                "box_key": bytes(key.verify_key).hex(),
                "x25519": bytes(sealing).hex(),
                "sync_peer": identity.writer_id,
            }
            signed = statement_bytes(statement)
            body = {
                **{
                    k: statement[k] for k in ("protocol", "nonce", "box_key", "x25519", "sync_peer")
                },
                "signature": key.sign(signed).signature.hex(),
                "sync_signature": identity.signing_key.sign(signed).signature.hex(),
                "binding": key.sign(binding_bytes(identity.writer_id)).signature.hex(),
            }
            if token is not None:
                body["token"] = token
            answer = client.post(path, json=body)
            if answer.status_code != 200:
                raise _error_of(answer)
            result: dict[str, Any] = answer.json()
            return result
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise EnrolError(
            "ハブに接続できません（閉域網とハブの URL を確認してください）。",
            f"cannot reach the hub at {hub_url}: {exc}",
        ) from exc


def enrol(
    hub_url: str,
    token: str,
    data_dir: Path,
    *,
    root: VerifyKey,
    tls_dir: Path | None = None,
    from_dir: Path | None = None,
    ca_file: Path | None = None,
    timeout_s: float = 30.0,
) -> Enrolled:
    """Enrol this box (see the module docstring). Raises EnrolError; on error nothing the
    box relies on has changed (the box key and sync identity may have been created:
    they are this box's, and the next attempt uses them)."""
    token = token.strip()
    if not token:
        raise EnrolError("登録トークンが空です。", "empty enrolment token")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = box_signing_key(data_dir)
    replica = data_dir / "replica.db"
    migrations.apply(replica, "box")
    storage = SqliteStorage(replica)
    try:
        identity = load_or_create_identity(storage)
        ca_pem = ca_file.read_bytes() if ca_file is not None and ca_file.is_file() else None
        result = _ask(hub_url, "/api/enrol", key, identity, token, ca_pem, timeout_s)
        return _install(result, data_dir, key, storage, root, hub_url, tls_dir, from_dir, ca_pem)
    finally:
        storage.close()


def renew(
    hub_url: str,
    data_dir: Path,
    *,
    root: VerifyKey,
    ca_file: Path | None = None,
    timeout_s: float = 30.0,
) -> Enrolled:
    """A fresh certificate for an enrolled box, before its current one expires (no
    token). The TLS material and settings stay as they are."""
    if not (data_dir / CERT_FILE).exists() or not (data_dir / "box.key").exists():
        raise EnrolError("このボックスはまだ登録されていません。", "this box is not enrolled")
    key = box_signing_key(data_dir)
    storage = SqliteStorage(data_dir / "replica.db")
    try:
        identity = load_or_create_identity(storage)
        ca_pem = ca_file.read_bytes() if ca_file is not None and ca_file.is_file() else None
        result = _ask(hub_url, "/api/enrol/renew", key, identity, None, ca_pem, timeout_s)
        folder = federation_settings(data_dir).get("tls_dir")
        tls_dir = Path(folder) if folder else None
        return _install(result, data_dir, key, storage, root, hub_url, tls_dir, None, ca_pem)
    finally:
        storage.close()


def _install(
    result: dict[str, Any],
    data_dir: Path,
    key: SigningKey,
    storage: SqliteStorage,
    root: VerifyKey,
    hub_url: str,
    tls_dir: Path | None,
    from_dir: Path | None,
    ca_pem: bytes | None,
) -> Enrolled:
    now = datetime.now(UTC)
    try:
        cert = Certificate.from_json(result["certificate"])
        verify_box_certificate(cert, root, now=now)
        box, town = str(result["box"]), str(result["town"])
        directory = result["directory"]
        hub_writer = str(directory["hub_writer"] or "")
        if hub_writer:
            VerifyKey(bytes.fromhex(hub_writer))
    except (CryptoError, KeyError, TypeError, ValueError) as exc:
        raise EnrolError(
            "ハブから受け取った証明書を確認できません（連合ルートの鍵と一致しません）。",
            f"the certificate from the hub does not verify against the pinned root: {exc}",
        ) from exc
    if bytes(cert.verify_key) != bytes(key.verify_key) or bytes(cert.sealing_key) != bytes(
        key.verify_key.to_curve25519_public_key()
    ):
        raise EnrolError(
            "証明書がこのボックスの鍵のものではありません。",
            "the certificate is not for this box's key",
        )
    if (cert.subject, cert.town) != (box, town):
        raise EnrolError(
            "証明書の内容が登録の応答と一致しません。", "the certificate names another box or town"
        )
    # The audit chain this key writes (a hub one release older names none: the first).
    audit_writer = str(result.get("audit_writer") or box_writer_id(box))
    if audit_writer not in own_writer_ids(box, key.verify_key):
        raise EnrolError(
            "ハブが指定した監査ログの書き手がこのボックスの鍵と一致しません。",
            f"the hub named audit writer {audit_writer!r}, not one of this box's key",
        )
    try:
        offered = result.get("revocations")
        revocations = verify_list(offered, root, now=now) if offered else None
    except RevocationError as exc:
        raise EnrolError(
            "ハブから受け取った失効リストを確認できません。",
            f"the revocation list from the hub does not verify: {exc}",
        ) from exc
    held = RevocationStore(data_dir, lambda: root).sequence
    tls = result.get("tls") or _from_dir(from_dir)
    checked = _check_tls(tls, ca_pem, now) if tls and tls_dir is not None else None
    if tls_dir is not None and checked is None and not (tls_dir / TLS_CERT).is_file():
        raise EnrolError(
            "TLS 証明書がありません（鍵の儀式で発行したものを USB メモリで渡すか、"
            "トークン発行時にハブへ預けてください）。",
            "no TLS server certificate: stage it with the token or bring it with --from",
        )
    files = _Files()
    try:
        if checked is not None and tls_dir is not None:
            cert_pem, key_pem, ca = checked
            files.write(tls_dir / TLS_KEY, key_pem, 0o600)
            files.write(tls_dir / TLS_CERT, cert_pem, 0o644)
            if ca is not None:
                files.write(tls_dir / "federation-ca.crt", ca, 0o644)
        settings = {
            "hub": hub_url,
            "box": box,
            "town": town,
            "federation_root": bytes(root).hex(),
            "hub_writer": hub_writer,
            "audit_writer": audit_writer,
            "tls_dir": str(tls_dir) if tls_dir else None,
            "enrolled_at": now.isoformat(timespec="seconds"),
        }
        files.write(
            data_dir / FEDERATION_FILE,
            json.dumps(settings, ensure_ascii=False, indent=1).encode(),
            0o644,
        )
        discovery = data_dir / DISCOVERY_FILE
        found: dict[str, Any] = {}
        if discovery.exists():
            found = json.loads(discovery.read_text(encoding="utf-8"))
        found["federation_root"] = bytes(root).hex()
        if tls_dir is not None and "tls_cert" not in found:
            found["tls_cert"] = str(tls_dir / TLS_CERT)
        files.write(discovery, json.dumps(found, ensure_ascii=False, indent=1).encode(), 0o644)
        if revocations is not None and revocations.sequence > held:
            files.write(data_dir / REVOCATIONS_FILE, canonical(revocations.envelope), 0o644)
        items = [
            (("federation", "towns"), json.dumps(sorted(directory["towns"])).encode()),
            (
                ("federation", "names"),
                json.dumps(directory.get("names", {}), ensure_ascii=False).encode(),
            ),
        ]
        if hub_writer:
            items.append((("federation", "hub-writer"), hub_writer.encode()))
        previous = [(k, storage.load(k)) for k, _ in items]
        storage.save_many(items)
        try:
            files.write(data_dir / CERT_FILE, cert.to_bytes(), 0o644)  # last: "enrolled"
        except BaseException:
            storage.save_many([(k, v) for k, v in previous if v is not None])
            for k, v in previous:
                if v is None:
                    storage.remove(k)
            raise
    except BaseException:
        files.undo()
        raise
    return Enrolled(box, town, cert, hub_writer)
