"""Online delivery of emergency records (覚書 §2): a deputy's activation, revocation or
ratification posted to the hub reaches the named host box without anyone typing a code.

    POST /api/emergency/{host_town}   body: a record as JSON (shared/activation.py
                                      `to_json()`), or {"code": "<offline code>"}
        201 {"id": hex, "type": ...}  stored (200 when the hub already held it)
        400 {"error": <Japanese>, "reason": ...}   malformed, or the signature does not
                                      verify as a deputy's of the issuing town
    GET  /api/emergency/{host_town}   {"records": [record JSON, ...]} (any order)

The hub checks the signer (a deputy of the issuing town, with the clerk certificates it
holds) so it does not relay junk, but it is only a mailbox: every box verifies each
record again, exactly as it verifies a typed code (edge/activation_feed.py), so a record
slipped into the hub's store is refused at the box. Records are stored under
(host_town, "emergency-feed", id) and never removed (they hold no personal data: town
codes, times, tags of clerk ids, a signature).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.activation import (
    Activation,
    ActivationRefused,
    Ratification,
    Refusal,
    Revocation,
    TownTrust,
    parse_record,
    verify_deputy_record,
)
from shared.crypto import ClerkCertificate, TownPublic
from shared.storage import Storage, StorageKey

FEED = "emergency-feed"
MAX_BODY = 16 * 1024


def feed_key(host_town: str, record_id: str) -> StorageKey:
    return (host_town, FEED, record_id)


def town_trust(storage: Storage, town: str) -> TownTrust | None:
    """What the hub knows of a town: its public key and its clerks' certificates."""
    public = storage.load((town, "public"))
    if public is None:
        return None
    certs = []
    for _, raw in storage.load_range((town, "credential")):
        try:
            certs.append(ClerkCertificate.from_json(json.loads(raw)["certificate"]))
        except (ValueError, KeyError, TypeError):
            continue
    return TownTrust.of(TownPublic.from_json(json.loads(public)), certs)


def accept_posted(storage: Storage, host_town: str, body: Any) -> tuple[bool, Any]:
    """Verify a posted record and keep it for `host_town`'s boxes. Returns (new, record).
    Raises ActivationRefused."""
    if isinstance(body, dict) and set(body) == {"code"}:
        body = str(body["code"])
    record = parse_record(body)
    if not isinstance(record, Activation | Revocation | Ratification):
        raise ActivationRefused(Refusal.WRONG_KIND, "not deliverable", expected="起動・取消・追認",
                                actual=getattr(record, "LABEL", "緊急起動"))  # fmt: skip
    if isinstance(record, Activation) and record.host_town != host_town:
        raise ActivationRefused(Refusal.WRONG_HOST, "another host town",
                                host=record.host_town, town=record.town)  # fmt: skip
    trust = town_trust(storage, record.town)
    if trust is None:
        raise ActivationRefused(Refusal.UNKNOWN_SIGNER, "town unknown", town=record.town)
    verify_deputy_record(record, type(record), trust)
    key = feed_key(host_town, record.id.hex())
    if storage.load(key) is not None:
        return False, record
    data = json.dumps(record.to_json(), sort_keys=True, ensure_ascii=False).encode()
    storage.save(key, data)
    return True, record


def emergency_routes() -> list[Route]:
    async def post(request: Request) -> JSONResponse:
        host_town = request.path_params["host_town"]
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": "記録が大きすぎます。"}, status_code=413)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        try:
            new, record = accept_posted(request.app.state.storage, host_town, body)
        except ActivationRefused as exc:
            return JSONResponse({"error": str(exc), "reason": str(exc.reason)}, status_code=400)
        return JSONResponse(
            {"id": record.id.hex(), "type": record.NAME}, status_code=201 if new else 200
        )

    async def listing(request: Request) -> JSONResponse:
        storage: Storage = request.app.state.storage
        host_town = request.path_params["host_town"]
        records = [json.loads(raw) for _, raw in storage.load_range((host_town, FEED))]
        return JSONResponse({"records": records})

    return [
        Route("/api/emergency/{host_town:str}", post, methods=["POST"]),
        Route("/api/emergency/{host_town:str}", listing, methods=["GET"]),
    ]
