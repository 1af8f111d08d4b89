"""`GET /api/identity`: how a box proves who it is to a peer on the LAN (BRIEF §3
Discovery), and `GET /api/lan`: what the box sees on the LAN.

An mDNS advertisement is only a claim. A peer that wants to know who it found sends a
fresh random nonce; the box answers with its enrolment certificate (signed by the
federation root, `shared.crypto.issue_box_certificate`) and an Ed25519 signature, by the
certified box key, over a statement that binds:

    nonce        the caller's 32 random bytes: a recorded answer is useless later
    tls          SHA-256 of the DER certificate this box's HTTPS server presents, so an
                 answer relayed through somebody else's TLS endpoint does not match the
                 channel the caller actually used
    box, town    who the box is, as certified; certificate = the certificate's fingerprint
    sync_peer    the sync agent's peer id and port (edge/sync_agent.py): bound here to the
    sync_port    enrolled box key, which is what lets a verified peer be admitted for sync
    holdings     {town: blobs held}, a hint of whose replica is fresher

Checking the answer is edge/peers.py's job. Wire format (JSON, UTF-8):

    GET /api/identity?nonce=<64 hex>
      200 {"protocol": 1, "enrolled": true, "name": "聖籠町役場 連携ボックス",
           "statement": {...the fields above, "protocol": 1},
           "certificate": {...Certificate JSON...}, "signature": "<128 hex>"}
      200 {"protocol": 1, "enrolled": false, "box": id, "town": code, "name": ...}
      400 {"error": ...}                          missing or malformed nonce
    GET /api/lan
      200 {"peers": [...], "printers": [...], "events": [...]}  (no personal data)

The signature covers b"renkei identity v1\\x00" + the statement as canonical JSON (sorted
keys, no spaces, UTF-8).

Enrolment: the box's key is `data_dir/box.key` (edge/app.py makes it); the certificate the
federation's key ceremony issues for it is `data_dir/box.cert.json` (`write_enrolment`).
Without a valid one the box answers "not enrolled" and peers list it as an unknown device.

Errors: `IdentityFormatError` (a statement that does not parse).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.crypto import Certificate, CryptoError

log = logging.getLogger(__name__)

PROTOCOL = 1
NONCE_BYTES = 32
KEY_FILE = "box.key"
CERT_FILE = "box.cert.json"
_CONTEXT = b"renkei identity v1\x00"


class IdentityFormatError(ValueError):
    """An identity statement that does not parse."""


def canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def certificate_fingerprint(cert: Certificate) -> str:
    """SHA-256 (hex) of the certificate's canonical bytes: what the TXT record hints."""
    return hashlib.sha256(cert.to_bytes()).hexdigest()


def tls_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, slots=True)
class SyncInfo:
    peer: str = ""  # the sync agent's self-certifying peer id, "" when it has none
    port: int | None = None  # the box↔box sync port, None when not serving one
    holdings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Statement:
    protocol: int
    box: str
    town: str
    certificate: str
    nonce: str
    tls: str
    sync_peer: str
    sync_port: int | None
    holdings: dict[str, int]

    def signed_bytes(self) -> bytes:
        return _CONTEXT + canonical(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Statement:
        if not isinstance(data, dict):
            raise IdentityFormatError("statement is not a JSON object")
        strings = ("box", "town", "certificate", "nonce", "tls", "sync_peer")
        for name in strings:
            if not isinstance(data.get(name), str):
                raise IdentityFormatError(f"statement field {name!r} missing or not text")
        protocol, port, holdings = data.get("protocol"), data.get("sync_port"), data.get("holdings")
        if not isinstance(protocol, int) or isinstance(protocol, bool):
            raise IdentityFormatError("statement protocol is not an integer")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise IdentityFormatError("statement sync_port is not a port")
        if not isinstance(holdings, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in holdings.items()
        ):
            raise IdentityFormatError("statement holdings is not {town: count}")
        if set(data) != {*strings, "protocol", "sync_port", "holdings"}:
            raise IdentityFormatError("statement has unexpected fields")
        return cls(
            protocol=protocol,
            sync_port=port,
            holdings=dict(holdings),
            **{name: data[name] for name in strings},
        )


def write_enrolment(data_dir: Path, cert: Certificate) -> Path:
    """Install the box's enrolment certificate (from the key ceremony) atomically."""
    path = data_dir / CERT_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{CERT_FILE}.", dir=data_dir)
    with os.fdopen(fd, "wb") as out:
        out.write(cert.to_bytes())
    os.replace(tmp, path)
    return path


def read_enrolment(data_dir: Path, key: SigningKey, box_id: str) -> Certificate | None:
    """The box's certificate if it is there and certifies THIS key and box id; a
    certificate for another key would make every peer refuse us, so it counts as none.
    Whether the root signed it is for the peers to check."""
    path = data_dir / CERT_FILE
    if not path.exists():
        return None
    try:
        cert = Certificate.from_bytes(path.read_bytes())
    except (OSError, CryptoError) as exc:
        log.error("%s is unreadable (%s): the box acts as not enrolled", path, exc)
        return None
    if cert.kind != "box" or bytes(cert.verify_key) != bytes(key.verify_key):
        log.error("%s does not certify this box's key: the box acts as not enrolled", path)
        return None
    if cert.subject != box_id:
        log.error(
            "%s is for box %r, not %r: the box acts as not enrolled", path, cert.subject, box_id
        )
        return None
    return cert


def server_cert_der(cert_file: Path | None) -> bytes | None:
    """The DER bytes of the PEM server certificate the box's HTTPS serves (edge/tls.py)."""
    if cert_file is None:
        return None
    return ssl.PEM_cert_to_DER_cert(cert_file.read_text())


class BoxIdentity:
    """What /api/identity answers with: the box's key, its certificate (if enrolled), its
    TLS certificate, and — once the sync agent runs — its sync peer id, port and holdings."""

    def __init__(
        self,
        box_id: str,
        town: str,
        key: SigningKey,
        certificate: Certificate | None,
        *,
        name: str,
        tls_der: bytes | None = None,
    ) -> None:
        self.box_id = box_id
        self.town = town
        self.name = name
        self._key = key
        self.certificate = certificate
        self.tls = tls_fingerprint(tls_der) if tls_der else ""
        self.sync: Callable[[], SyncInfo] = SyncInfo

    @classmethod
    def load(
        cls, data_dir: Path, box_id: str, town: str, *, name: str, tls_cert: Path | None
    ) -> BoxIdentity:
        key = SigningKey((data_dir / KEY_FILE).read_bytes())
        cert = read_enrolment(data_dir, key, box_id)
        return cls(box_id, town, key, cert, name=name, tls_der=server_cert_der(tls_cert))

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate) if self.certificate else ""

    def answer(self, nonce: str) -> dict[str, Any]:
        if self.certificate is None:
            return {
                "protocol": PROTOCOL,
                "enrolled": False,
                "box": self.box_id,
                "town": self.town,
                "name": self.name,
            }
        sync = self.sync()
        statement = Statement(
            protocol=PROTOCOL,
            box=self.certificate.subject,
            town=self.certificate.town,
            certificate=self.fingerprint,
            nonce=nonce,
            tls=self.tls,
            sync_peer=sync.peer,
            sync_port=sync.port,
            holdings=sync.holdings,
        )
        return {
            "protocol": PROTOCOL,
            "enrolled": True,
            "name": self.name,
            "statement": statement.to_json(),
            "certificate": self.certificate.to_json(),
            "signature": self._key.sign(statement.signed_bytes()).signature.hex(),
        }


def _nonce(request: Request) -> str | None:
    value = request.query_params.get("nonce", "")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return value.lower() if len(raw) == NONCE_BYTES else None


def identity_routes(identity: BoxIdentity, lan_view: Callable[[], dict[str, Any]]) -> list[Route]:
    async def identity_endpoint(request: Request) -> JSONResponse:
        nonce = _nonce(request)
        if nonce is None:
            return JSONResponse(
                {"error": f"nonce must be {NONCE_BYTES} random bytes in hex"}, status_code=400
            )
        # the sync info reads the blob log under the agent's lock: not on the event loop
        answer = await asyncio.to_thread(identity.answer, nonce)
        return JSONResponse(answer, headers={"cache-control": "no-store"})

    async def lan_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(lan_view(), headers={"cache-control": "no-store"})

    return [
        Route("/api/identity", identity_endpoint, methods=["GET"]),
        Route("/api/lan", lan_endpoint, methods=["GET"]),
    ]
