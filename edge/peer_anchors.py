"""Audit chain heads anchored at LAN peers (BRIEF §3 Audit: "anchored at peers and at the
hub"; docs/audit.md §3). With the hub away, boxes that verified each other on the LAN
(edge/peers.py) exchange their signed heads and keep each other's as anchors, so a box
whose log is later cut short or rolled back is still named by `renkei audit verify`,
given the peer's store (`--anchors <peer's replica.db>`).

    POST https://<peer>/api/audit/anchors    (the box's own HTTPS port)
      the hub's statement (cloud/anchors.py: statement, key, signature) plus
      "certificate": the sender's box certificate (chained to the federation root)
      200 {"stored": n, "conflicts": [...]} · 400 malformed · 403 proof fails
      503 this box has no federation root pinned (discovery.json)

A peer has no enrolment registry, so the statement carries its proof: the certificate
must chain to the root key pinned on this box and be valid now, name the box the
statement names and certify the key that signed it; a box's own name is refused. The
heads are kept in this box's `AnchorStore` ((town, "audit-anchor", writer), source
`box:<sender>`), which is not replicated anywhere. A sender whose key is on the
revocation list this box holds (edge/revocations.py) is refused: a revoked box, and a
box's previous key once the box was re-enrolled with a new one (cloud/enrolment.py).

Sending (`PeerAnchorExchange`): every `interval_s` the box reads its heads and posts them
to each VERIFIED peer whose last accepted statement differs; both boxes do so, so each
anchors the other's heads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.anchors import CONTEXT, MAX_BODY, AnchorRefused, canonical
from edge.anchoring import chain_heads, signed_statement
from edge.peers import VerifiedPeer
from shared.audit import AnchorStore, AuditConflict, AuditError, ChainHead, box_writer_id
from shared.background import BackgroundLoop
from shared.crypto import Certificate, CryptoError, verify_box_certificate
from shared.storage import Storage

log = logging.getLogger(__name__)

MAX_TOWNS = 64
MAX_HEADS = 4096


def accept_peer_statement(
    storage: Storage,
    body: Any,
    *,
    root: VerifyKey,
    own_box: str,
    now: float,
    revoked: Callable[[VerifyKey], str | None] | None = None,
) -> dict[str, Any]:
    """Check a peer's signed heads against its certificate and the pinned root; keep
    them as anchors. Raises AnchorRefused (nothing stored)."""
    try:
        statement = body["statement"]
        key = VerifyKey(bytes.fromhex(body["key"]))
        signature = bytes.fromhex(body["signature"])
        cert = Certificate.from_json(body["certificate"])
        box = str(statement["box"])
        writer = box_writer_id(box)
        heads = {
            str(town): [ChainHead.from_json(h) for h in items]
            for town, items in dict(statement["heads"]).items()
        }
    except (KeyError, TypeError, ValueError, AuditError, CryptoError) as exc:
        raise AnchorRefused(f"malformed statement: {exc}", 400) from exc
    except nacl.exceptions.CryptoError as exc:
        raise AnchorRefused(f"malformed statement: {exc}", 400) from exc
    if len(heads) > MAX_TOWNS or sum(len(v) for v in heads.values()) > MAX_HEADS:
        raise AnchorRefused("too many heads", 400)
    try:
        verify_box_certificate(cert, root, now=datetime.fromtimestamp(now, UTC))
    except CryptoError as exc:
        raise AnchorRefused(f"certificate does not verify: {exc}", 403) from exc
    if cert.subject != box or bytes(cert.verify_key) != bytes(key):
        raise AnchorRefused(f"the certificate is not box {box!r}'s key", 403)
    if box == own_box:
        raise AnchorRefused("a box does not anchor its own heads", 403)
    reason = revoked(key) if revoked else None
    if reason:
        raise AnchorRefused(f"on the federation's revocation list: {reason}", 403)
    try:
        key.verify(CONTEXT + canonical(statement), signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise AnchorRefused("signature does not verify", 403) from exc
    stored, conflicts = 0, []
    for town, items in sorted(heads.items()):
        anchors = AnchorStore(storage, town)
        for head in items:
            try:
                stored += anchors.record(head, source=writer, seen_at=now)
            except AuditConflict as exc:
                conflicts.append({"town": town, "writer": head.writer, "detail": str(exc)})
    return {"stored": stored, "conflicts": conflicts}


def peer_anchor_routes(
    storage: Storage,
    own_box: str,
    root: Callable[[], VerifyKey | None],
    revoked: Callable[[VerifyKey], str | None] | None = None,
) -> list[Route]:
    """The box's endpoint for its verified peers' heads; `root` gives the pinned
    federation root key (None when the box has none)."""

    async def post(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": "too large"}, status_code=413)
        pinned = root()
        if pinned is None:
            return JSONResponse({"error": "no federation root pinned"}, status_code=503)
        try:
            body = json.loads(raw)
            result = await asyncio.to_thread(
                accept_peer_statement, storage, body, root=pinned, own_box=own_box,
                now=time.time(), revoked=revoked,
            )  # fmt: skip
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        except AnchorRefused as exc:
            log.warning("peer audit anchors refused: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        for conflict in result["conflicts"]:
            log.error("a peer reports another head for an audit chain: %s", conflict)
        return JSONResponse(result)

    return [Route("/api/audit/anchors", post, methods=["POST"])]


def _client_context(ca_file: Path | None) -> ssl.SSLContext:
    """As for the identity check: the peer was verified by its enrolment proof; the heads
    sent are no secret (writer, seq and a hash)."""
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.check_hostname = False
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class PeerAnchorExchange(BackgroundLoop):
    def __init__(
        self,
        storage: Storage,
        towns: Callable[[], Iterable[str]],
        box_id: str,
        key: SigningKey,
        certificate: Callable[[], Certificate | None],
        peers: Callable[[], list[VerifiedPeer]],
        *,
        ca_file: Path | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.storage = storage
        self.towns = towns
        self.box_id = box_id
        self.key = key
        self.certificate = certificate
        self.peers = peers
        self.ca_file = ca_file
        self.interval_s = interval_s
        self._sent: dict[str, dict[str, list[dict[str, Any]]]] = {}  # peer box -> heads

    async def exchange_once(self) -> list[str]:
        """Post changed heads to every verified peer; the peers that took them."""
        cert = self.certificate()
        peers = [p for p in self.peers() if p.box != self.box_id]
        if cert is None or not peers:
            return []
        heads = await asyncio.to_thread(chain_heads, self.storage, list(self.towns()))
        if not heads:
            return []
        body = signed_statement(self.box_id, self.key, heads, time.time())
        body["certificate"] = cert.to_json()
        took = []
        async with httpx.AsyncClient(verify=_client_context(self.ca_file), timeout=10) as client:
            for peer in peers:
                if self._sent.get(peer.box) == heads:
                    continue
                url = f"https://{peer.address}:{peer.port}/api/audit/anchors"
                try:
                    response = await client.post(url, json=body)
                except httpx.HTTPError as exc:
                    log.info("audit anchors: peer %s not reachable: %s", peer.box, exc)
                    continue
                if response.status_code != 200:
                    log.warning("peer %s refused our audit anchors: %s %s", peer.box,
                                response.status_code, response.text[:200])  # fmt: skip
                    continue
                for conflict in response.json().get("conflicts", []):
                    log.error("peer %s holds another head of an audit chain: %s", peer.box,
                              conflict)  # fmt: skip
                self._sent[peer.box] = heads
                took.append(peer.box)
        return took

    async def _run(self) -> None:
        while True:
            try:
                await self.exchange_once()
            except Exception:  # keep exchanging; the next round tries again
                log.exception("audit anchoring at peers failed")
            await asyncio.sleep(self.interval_s)

