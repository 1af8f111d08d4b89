"""Clerk changes made on a box reach the hub (BRIEF §3: a supervisor adds, resets and
revokes clerks where the town's keys are — the town's worker on the box — with no other
clerk's password).

    POST /api/replica/{town}/credentials/{login}   a credential record (JSON, see
                                                    shared.clerk_records) → 200 | 409 | 400
    POST /api/replica/{town}/revocations           a signed clerk revocation → 200 | 400

Both are signed with the town's current keys (the certificate in the record; the
revocation itself), so only a holder of the town's key ring can make them; the hub checks
that against the town's public keys. A record older than the one held (by its
certificate's issue time) or than a revocation of the same clerk is refused, so a replay
cannot bring back an old password or a revoked clerk. Revocations are kept under
(town, "revoked-clerk", login) for the next key rotation (`renkei rotate`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.clerk_records import ClerkRecordError, certificate_of, verify_record, verify_revocation
from shared.crypto import TownPublic
from shared.storage import Storage


def _public(storage: Storage, town: str) -> TownPublic | None:
    data = storage.load((town, "public"))
    return None if data is None else TownPublic.from_json(json.loads(data))


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.body())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def store_credential(storage: Storage, town: str, login: str, record: dict[str, Any]) -> str:
    """Store a box-made credential record; returns "" or why it was refused."""
    public = _public(storage, town)
    if public is None:
        return "unknown town"
    try:
        certificate = verify_record(record, public)
    except ClerkRecordError as exc:
        return str(exc)
    if certificate.login_id != login:
        return "record names another clerk"
    issued = certificate.issued_at.timestamp()
    held = storage.load((town, "credential", login))
    if held is not None and certificate_of(json.loads(held)).issued_at.timestamp() > issued:
        return "a newer record is held"
    revoked = storage.load((town, "revoked-clerk", login))
    if revoked is not None and float(json.loads(revoked)["at"]) >= issued:
        return "the clerk was revoked"
    storage.save((town, "credential", login), json.dumps(record, ensure_ascii=False).encode())
    return ""


def apply_revocation(storage: Storage, town: str, statement: dict[str, Any]) -> str:
    public = _public(storage, town)
    if public is None:
        return "unknown town"
    try:
        body = verify_revocation(statement, public)
    except ClerkRecordError as exc:
        return str(exc)
    login = str(body["login_id"])
    held = storage.load((town, "credential", login))
    if held is not None and certificate_of(json.loads(held)).issued_at.timestamp() <= body["at"]:
        storage.remove((town, "credential", login))
    storage.save((town, "revoked-clerk", login), json.dumps(statement).encode())
    return ""


def clerk_routes() -> list[Route]:
    async def post_credential(request: Request) -> JSONResponse:
        record = await _body(request)
        if record is None:
            return JSONResponse({"error": "bad request"}, status_code=400)
        town, login = request.path_params["town"], request.path_params["login"]
        refused = store_credential(request.app.state.storage, town, login, record)
        if refused:
            return JSONResponse({"error": refused}, status_code=409)
        return JSONResponse({"ok": True})

    async def post_revocation(request: Request) -> JSONResponse:
        statement = await _body(request)
        if statement is None:
            return JSONResponse({"error": "bad request"}, status_code=400)
        refused = apply_revocation(
            request.app.state.storage, request.path_params["town"], statement
        )
        if refused:
            return JSONResponse({"error": refused}, status_code=400)
        return JSONResponse({"ok": True})

    return [
        Route("/api/replica/{town:str}/credentials/{login:str}", post_credential, methods=["POST"]),
        Route("/api/replica/{town:str}/revocations", post_revocation, methods=["POST"]),
    ]
