"""Audit chain heads anchored at the hub (BRIEF §3 Audit; docs/audit.md §3).

A box sends, signed with its own key (`data_dir/box.key`, the key its audit entries are
signed with), the heads of the audit chains it holds; the hub keeps the newest head per
(town, writer) in its `AnchorStore`. Once a head is anchored here, a box whose log was
cut short or rolled back to an older copy can no longer pass `renkei audit verify`.

    POST /api/audit/anchors
      {"statement": {"v": 1, "box": "box-15307", "at": seconds,
                     "heads": {"15307": [{"writer", "seq", "hash"}, ...], ...}},
       "key": <hex Ed25519 verify key>, "signature": <hex>}
      signature = Ed25519(box key, "renkei audit anchors v1" 0x00 ‖ canonical statement)
      200 {"stored": n, "conflicts": [...]}   (a conflict: a head contradicting an anchor
                                              already held — evidence of a rewritten chain)
      400 malformed · 403 signature, or a key that is not the box's enrolled key

No key is trusted on first use: the statement is taken only when the box is enrolled at
this hub (cloud/enrolment.py `Registry`), not revoked, its box certificate chains to the
pinned federation root and is valid now, and that certificate certifies exactly the key
that signed and names the box the statement names (`enrolled_box_key`). A hub with no
federation root pinned takes no anchors at all. After the box is re-enrolled with a
new key the old key is no longer the enrolment's, so its statements are refused. The
keys `renkei audit verify` checks box entries with come from the registry's history of
certified keys (`Registry.box_keys`, each with the period it was valid), not from the
first statement a box sent.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import nacl.exceptions
from nacl.signing import VerifyKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.enrolment import Registry
from cloud.store import known_towns
from shared.audit import AnchorStore, AuditConflict, AuditError, ChainHead, box_writer_id
from shared.crypto import CryptoError, verify_box_certificate
from shared.storage import Storage

CONTEXT = b"renkei audit anchors v1\x00"
MAX_BODY = 256 * 1024


class AnchorRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def enrolled_box_key(registry: Registry, box: str, key: VerifyKey, now: float) -> None:
    """Refuse (403) unless `key` is the key of box `box`'s enrolment: enrolled here, not
    revoked, its certificate chaining to the pinned root, valid at `now`, for this box."""
    root = registry.root()
    if root is None:
        raise AnchorRefused("no federation root pinned at this hub: no box is enrolled", 403)
    row = registry.box(box)
    if row is None:
        raise AnchorRefused(f"box {box!r} is not enrolled at this hub", 403)
    if row.revoked_at is not None:
        raise AnchorRefused(f"box {box!r} is revoked", 403)
    try:
        cert = verify_box_certificate(row.cert(), root, now=datetime.fromtimestamp(now, UTC))
    except (CryptoError, ValueError) as exc:
        raise AnchorRefused(f"box {box!r}: certificate does not verify: {exc}", 403) from exc
    if cert.subject != box or bytes(cert.verify_key) != bytes(key):
        raise AnchorRefused(f"box {box!r} signed with a key its certificate does not name", 403)


def record_statement(
    storage: Storage, body: Any, registry: Registry, *, now: float | None = None
) -> dict[str, Any]:
    """Check a box's signed heads and anchor them. Raises AnchorRefused."""
    try:
        statement = body["statement"]
        key = VerifyKey(bytes.fromhex(body["key"]))
        signature = bytes.fromhex(body["signature"])
        box = str(statement["box"])
        writer = box_writer_id(box)
        heads = {
            str(town): [ChainHead.from_json(h) for h in items]
            for town, items in dict(statement["heads"]).items()
        }
    except (KeyError, TypeError, ValueError, AuditError, nacl.exceptions.CryptoError) as exc:
        raise AnchorRefused(f"malformed statement: {exc}", 400) from exc
    try:
        key.verify(CONTEXT + canonical(statement), signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise AnchorRefused("signature does not verify", 403) from exc
    seen_at = time.time() if now is None else now
    enrolled_box_key(registry, box, key, seen_at)
    towns = set(known_towns(storage))
    stored, conflicts = 0, []
    for town, items in sorted(heads.items()):
        if town not in towns:
            continue
        anchors = AnchorStore(storage, town)
        for head in items:
            try:
                stored += anchors.record(head, source=writer, seen_at=seen_at)
            except AuditConflict as exc:
                conflicts.append({"town": town, "writer": head.writer, "detail": str(exc)})
    return {"stored": stored, "conflicts": conflicts}


def anchor_routes() -> list[Route]:
    log = logging.getLogger(__name__)

    async def post(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": "too large"}, status_code=413)
        try:
            body = json.loads(raw)
            state = request.app.state
            result = record_statement(state.storage, body, state.enrolment.registry)
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        except AnchorRefused as exc:
            log.warning("audit anchors refused: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        for conflict in result["conflicts"]:
            log.error("audit anchor conflict: %s", conflict)
        return JSONResponse(result)

    return [Route("/api/audit/anchors", post, methods=["POST"])]
