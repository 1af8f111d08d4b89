"""Break-glass signatures made inside a town's worker process (BRIEF §3 Isolation).

A break-glass (shared/activation.py `BreakGlass`) is signed on the host box by a host
supervisor and two roster clerks of the stricken town, each with their own clerk key.
Clerk keys are unwrapped only in a worker, never in the web front, so the front sends
the worker the break-glass body and either

    the logged-in supervisor's session capability (host town's worker): the session's
        clerk key signs — the supervisor does not type the password again; or
    a roster clerk's login id and password (stricken town's worker): the worker unwraps
        the clerk's key, checks the town-signed certificate says "on the roster", signs
        and forgets the key. The town is NOT opened: no town key is unwrapped.

The worker signs only a parsed BreakGlass for its own town's role in it — never bytes the
front chose — so a compromised front cannot turn this into a general signing oracle.
Answers (one line of JSON, like every worker operation):

    {"ok": true, "signature": {"town", "login_id", "key_id", "signature"},
     "display_name": ...}
    {"ok": false, "error": <Japanese message>, "reason": "password" | "roster" | "record"}

Nothing here logs a password or a key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from edge.replica import BoxReplica
from shared import crypto
from shared.activation import ActivationError, BreakGlass, parse_record
from shared.model import Role

log = logging.getLogger(__name__)

MSG_WRONG_PASSWORD = "ログインIDまたはパスワードが正しくありません。"
MSG_NOT_ROSTER = "この職員は緊急時名簿に載っていないため、緊急起動に署名できません。"
MSG_NOT_SUPERVISOR = "緊急起動を始められるのは、この町村の監督者だけです。"
MSG_BAD_RECORD = "緊急起動の内容が正しくありません。最初からやり直してください。"


def _draft(record: object, town: str, role: str) -> BreakGlass | dict[str, Any]:
    """The unsigned break-glass, or an error answer when it is not one this town's
    worker should sign in this role."""
    try:
        parsed = parse_record(record) if isinstance(record, Mapping | str) else None
    except ActivationError:
        parsed = None
    if not isinstance(parsed, BreakGlass):
        return _refuse(MSG_BAD_RECORD, "record")
    if (role == "host" and parsed.host_town != town) or (
        role == "stricken" and parsed.stricken_town != town
    ):
        return _refuse(MSG_BAD_RECORD, "record")
    return BreakGlass(
        parsed.stricken_town, parsed.host_town, parsed.host_box, parsed.clerks,
        parsed.not_before, parsed.expires_at, parsed.reason,
    )  # fmt: skip


def _refuse(message: str, reason: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "reason": reason}


def _answer(signed: BreakGlass, display_name: str) -> dict[str, Any]:
    signature = signed.to_json()["signatures"][-1]
    return {"ok": True, "signature": signature, "display_name": display_name}


def sign_as_supervisor(
    town: str, record: object, keys: crypto.ClerkKeys, certificate: crypto.ClerkCertificate
) -> dict[str, Any]:
    """The logged-in host supervisor's signature (their session's key)."""
    draft = _draft(record, town, "host")
    if not isinstance(draft, BreakGlass):
        return draft
    if Role.SUPERVISOR not in certificate.roles:
        return _refuse(MSG_NOT_SUPERVISOR, "roster")
    return _answer(draft.signed_by(keys), certificate.login_id)


def sign_as_roster_clerk(
    replica: BoxReplica, town: str, record: object, login_id: str, password: str
) -> dict[str, Any]:
    """A roster clerk of the stricken town signs with their own key, unwrapped here."""
    draft = _draft(record, town, "stricken")
    if not isinstance(draft, BreakGlass):
        return draft
    raw = replica.storage.load((town, "credential", login_id))
    public = replica.town_public(town)
    if raw is None or public is None:
        return _refuse(MSG_WRONG_PASSWORD, "password")
    try:
        credential = json.loads(raw)
        keys = crypto.unwrap_clerk_keys(bytes.fromhex(credential["wrapped"]), password)
    except crypto.WrongPassword:
        return _refuse(MSG_WRONG_PASSWORD, "password")
    except (ValueError, KeyError, crypto.CryptoError) as exc:
        log.warning("credential of %s/%s unusable for break-glass: %s", town, login_id, exc)
        return _refuse(MSG_WRONG_PASSWORD, "password")
    try:
        certificate = crypto.verify_clerk_certificate(
            crypto.ClerkCertificate.from_json(credential["certificate"]), public
        )
    except (ValueError, KeyError, crypto.CryptoError) as exc:
        log.warning("certificate of %s/%s does not verify: %s", town, login_id, exc)
        return _refuse(MSG_WRONG_PASSWORD, "password")
    if certificate.login_id != login_id or keys.public.key_id != certificate.key_id:
        return _refuse(MSG_WRONG_PASSWORD, "password")
    if not certificate.on_roster:
        return _refuse(MSG_NOT_ROSTER, "roster")
    answer = _answer(draft.signed_by(keys), str(credential.get("name", login_id)))
    del keys
    return answer
