"""The federation's revocation list of box keys, as a box keeps and spreads it.

The hub refuses a revoked box at once (cloud/enrolment.py `Registry.admit`), but partner
boxes on the LAN check only the box certificate, which stays valid until it expires. So
the hub's enrolment issuer signs the list of revoked box keys with a sequence number
(`cloud.enrolment.signed_revocations`), and every box keeps the newest list it has seen:

    GET <hub>/api/revocations              the hub's current list (any box may ask)
    GET https://<box>/api/revocations      the list this box holds (LAN peers ask)
      {"list": {"protocol": 1, "kind": "renkei-revocations", "sequence": n,
                "issued_at": iso, "revoked": [{"box", "town", "key", "revoked_at"}]},
       "issuer": <issuer certificate>, "signature": <hex>}
      signature = Ed25519(issuer key, b"renkei revocations v1\\0" + canonical list)

A list is taken only when its issuer certificate chains to the federation root pinned on
this box (discovery.json) and is valid now, the signature verifies, and its sequence is
higher than the one held: an older or replayed list never replaces a newer one (a
revocation cannot be undone by replaying the list from before it). It is kept in
`DATA/revocations.json` (written atomically). The box fetches the list from the hub while
the hub answers, receives it in the enrolment answer, and asks every VERIFIED LAN peer
for theirs, so a revocation spreads from box to box with the hub down. edge/peers.py
refuses a peer whose certified key is on the list; edge/peer_anchors.py refuses its
anchors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.background import BackgroundLoop
from shared.crypto import Certificate, CryptoError, verify_issuer_certificate

log = logging.getLogger(__name__)

PROTOCOL = 1
KIND = "renkei-revocations"
CONTEXT = b"renkei revocations v1\x00"
FILE = "revocations.json"
MAX_BYTES = 1024 * 1024


class RevocationError(Exception):
    """A revocation list that is malformed, forged, or not newer than the one held."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_list(
    signing_key: SigningKey,
    issuer: Certificate,
    sequence: int,
    issued_at: datetime,
    revoked: Iterable[dict[str, Any]],
) -> dict[str, Any]:
    """The signed envelope (used by the hub; here so both sides share one format)."""
    body = {
        "protocol": PROTOCOL,
        "kind": KIND,
        "sequence": int(sequence),
        "issued_at": issued_at.astimezone(UTC).isoformat(),
        "revoked": sorted(revoked, key=lambda r: (str(r["key"]), str(r["box"]))),
    }
    signature = signing_key.sign(CONTEXT + canonical(body)).signature
    return {"list": body, "issuer": issuer.to_json(), "signature": signature.hex()}


@dataclass(frozen=True, slots=True)
class RevocationList:
    sequence: int
    issued_at: str
    revoked: dict[str, dict[str, Any]]  # box key (hex) -> entry
    envelope: dict[str, Any]

    def reason(self, key: VerifyKey) -> str | None:
        entry = self.revoked.get(bytes(key).hex())
        return None if entry is None else f"box {entry.get('box')!r} is revoked"


def verify_list(envelope: object, root: VerifyKey, *, now: datetime) -> RevocationList:
    """Check a signed list against the pinned root (pure). Raises RevocationError."""
    try:
        assert isinstance(envelope, dict)
        body = envelope["list"]
        issuer = Certificate.from_json(envelope["issuer"])
        signature = bytes.fromhex(str(envelope["signature"]))
        if body["protocol"] != PROTOCOL or body["kind"] != KIND:
            raise ValueError("not a revocation list")
        sequence = body["sequence"]
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise ValueError("bad sequence")
        revoked = {}
        for entry in body["revoked"]:
            VerifyKey(bytes.fromhex(str(entry["key"])))
            revoked[str(entry["key"])] = dict(entry)
    except (AssertionError, KeyError, TypeError, ValueError, CryptoError) as exc:
        raise RevocationError(f"malformed revocation list: {exc}") from exc
    except nacl.exceptions.CryptoError as exc:
        raise RevocationError(f"malformed revocation list: {exc}") from exc
    try:
        verify_issuer_certificate(issuer, root, now=now)
    except CryptoError as exc:
        raise RevocationError(f"revocation list issuer: {exc}") from exc
    try:
        issuer.verify_key.verify(CONTEXT + canonical(body), signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise RevocationError("revocation list not signed by its issuer") from exc
    return RevocationList(sequence, str(body.get("issued_at", "")), revoked, envelope)


class RevocationStore:
    """The newest verified list this box holds (never replaced by an older sequence)."""

    def __init__(
        self,
        data_dir: Path,
        root: Callable[[], VerifyKey | None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = data_dir / FILE
        self.root = root
        self.clock = clock
        self._lock = threading.Lock()
        self.current: RevocationList | None = None
        self._load()

    def _load(self) -> None:
        root = self.root()
        if root is None or not self.path.exists():
            return
        try:
            self.current = verify_list(json.loads(self.path.read_bytes()), root, now=self.clock())
        except (RevocationError, ValueError, OSError) as exc:
            log.error("stored revocation list ignored: %s", exc)

    @property
    def sequence(self) -> int:
        return -1 if self.current is None else self.current.sequence

    def offer(self, envelope: object) -> bool:
        """Take `envelope` if it verifies and is newer; True when it replaced the list.
        Raises RevocationError for a forged or malformed list or one with no root."""
        root = self.root()
        if root is None:
            raise RevocationError("no federation root pinned on this box")
        checked = verify_list(envelope, root, now=self.clock())
        with self._lock:
            if checked.sequence <= self.sequence:
                return False
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                out.write(canonical(checked.envelope))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            self.current = checked
        log.warning(
            "revocation list %d taken: %d revoked box key(s)",
            checked.sequence,
            len(checked.revoked),
        )
        return True

    def reason(self, key: VerifyKey) -> str | None:
        """Why a certified box key may not be trusted, or None."""
        current = self.current
        return None if current is None else current.reason(key)

    def routes(self) -> list[Route]:
        async def serve(request: Request) -> JSONResponse:
            current = self.current
            if current is None:
                return JSONResponse({"error": "no revocation list held"}, status_code=404)
            return JSONResponse(current.envelope, headers={"cache-control": "no-store"})

        return [Route("/api/revocations", serve)]


def _insecure() -> ssl.SSLContext:
    # the list is signed: the channel needs no trust (a peer's TLS name is not its address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class RevocationFetcher(BackgroundLoop):
    """Every `interval_s`: ask the hub, then every verified LAN peer, for a newer list."""

    def __init__(
        self,
        store: RevocationStore,
        hub_url: str,
        peers: Callable[[], Iterable[Any]],
        *,
        interval_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.store = store
        self.hub_url = hub_url.rstrip("/")
        self.peers = peers
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._failing: set[str] = set()

    def sources(self) -> list[str]:
        urls = [f"{self.hub_url}/api/revocations"] if self.hub_url else []
        for peer in self.peers():
            urls.append(f"https://{peer.address}:{peer.port}/api/revocations")
        return urls

    async def once(self) -> int:
        """One round; the sequence held afterwards."""
        async with httpx.AsyncClient(verify=_insecure(), timeout=self.timeout_s) as client:
            for url in self.sources():
                try:
                    response = await client.get(url)
                    if response.status_code == 404:
                        continue
                    response.raise_for_status()
                    if len(response.content) > MAX_BYTES:
                        raise RevocationError("revocation list too large")
                    self.store.offer(response.json())
                    self._failing.discard(url)
                except (httpx.HTTPError, ValueError, RevocationError) as exc:
                    if url not in self._failing:  # logged once per source until it recovers
                        self._failing.add(url)
                        log.warning("revocation list from %s not taken: %s", url, exc)
        return self.store.sequence

    async def _run(self) -> None:
        while True:
            try:
                await self.once()
            except Exception:  # keep asking; the next round tries again
                log.exception("revocation list round failed")
            await asyncio.sleep(self.interval_s)

