"""A clerk's credential record, made and changed by whoever holds the town's key ring.

The hub (key custodian) and a town's worker process on a box (after one of the town's
clerks logged in) hold the ring; either can give a clerk new keys, change what the town
certifies about them, or take them off the town's list — with no other clerk's password.

A credential record (JSON, as boxes store and the hub serves it):

    {"town", "login_id", "name",
     "wrapped":     hex of the clerk's keys wrapped under their password (shared.crypto),
     "certificate": the clerk's town-signed certificate (roles, roster, deputy rank),
     "town_keys":   {epoch: hex of that epoch's town keys sealed to the clerk}}

A clerk revocation (JSON), signed with the town's current signing key so the hub can check
it came from a holder of the town's keys:

    {"town", "login_id", "at": UTC seconds, "by": login id of the supervisor,
     "epoch", "signature": hex Ed25519 over "renkei clerk revocation v1" 0x00 ‖ canonical
     JSON of the other fields}

Errors: `ClerkRecordError` (a record or revocation that does not verify); a weak password
raises `shared.crypto.WeakPassword` with its Japanese message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import nacl.exceptions

from shared import crypto
from shared.model import Clerk, Role

REVOCATION_CONTEXT = b"renkei clerk revocation v1\x00"


class ClerkRecordError(Exception):
    """A credential record or clerk revocation that does not verify."""


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_credential(
    ring: crypto.KeyRing,
    clerk: Clerk,
    password: str,
    *,
    kdf_limits: crypto.KdfLimits = crypto.DEFAULT_KDF_LIMITS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Fresh keys for `clerk` wrapped under `password` (first issue or a reset), certified
    by the ring's current keys, with every epoch's town keys sealed to them."""
    keys = crypto.ClerkKeys.generate(clerk.town_code, clerk.login_id)
    wrapped = crypto.wrap_clerk_keys(
        keys, password, kdf_limits=kdf_limits, user_inputs=(clerk.login_id, clerk.town_code)
    )
    certificate = crypto.issue_clerk_certificate(
        ring.current,
        keys.public,
        roles=clerk.roles,
        on_roster=clerk.on_roster,
        deputy_rank=clerk.deputy_rank,
        issued_at=now or datetime.now(UTC),
    )
    return {
        "town": clerk.town_code,
        "login_id": clerk.login_id,
        "name": clerk.name,
        "wrapped": wrapped.hex(),
        "certificate": certificate.to_json(),
        "town_keys": {str(k.epoch): crypto.seal_town_keys(k, keys.public).hex() for k in ring},
    }


def recertify(
    ring: crypto.KeyRing,
    record: Mapping[str, Any],
    *,
    roles: Iterable[Role] | None = None,
    on_roster: bool | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The same keys and password, a new certificate (roles or roster changed)."""
    old = crypto.ClerkCertificate.from_json(record["certificate"])
    certificate = crypto.issue_clerk_certificate(
        ring.current,
        old.public,
        roles=old.roles if roles is None else tuple(roles),
        on_roster=old.on_roster if on_roster is None else on_roster,
        deputy_rank=old.deputy_rank,
        issued_at=now or datetime.now(UTC),
    )
    town_keys = dict(record["town_keys"])
    for keys in ring:  # a clerk certified under a newer epoch can open it too
        town_keys.setdefault(str(keys.epoch), crypto.seal_town_keys(keys, old.public).hex())
    return {**record, "certificate": certificate.to_json(), "town_keys": town_keys}


def certificate_of(record: Mapping[str, Any]) -> crypto.ClerkCertificate:
    return crypto.ClerkCertificate.from_json(record["certificate"])


def verify_record(record: Mapping[str, Any], public: crypto.TownPublic) -> crypto.ClerkCertificate:
    """The record's certificate, checked against the town's current public keys."""
    try:
        certificate = certificate_of(record)
        crypto.verify_clerk_certificate(certificate, public)
    except (crypto.CryptoError, KeyError, TypeError) as exc:
        raise ClerkRecordError(f"credential record does not verify: {exc}") from exc
    if (record.get("town"), record.get("login_id")) != (certificate.town, certificate.login_id):
        raise ClerkRecordError("credential record names another clerk than its certificate")
    return certificate


def revocation(ring: crypto.KeyRing, login_id: str, *, by: str, at: float) -> dict[str, Any]:
    keys = ring.current
    body = {"town": ring.town, "login_id": login_id, "at": int(at), "by": by, "epoch": keys.epoch}
    signature = keys.signing_key.sign(REVOCATION_CONTEXT + _canonical(body)).signature
    return {**body, "signature": signature.hex()}


def verify_revocation(statement: Mapping[str, Any], public: crypto.TownPublic) -> dict[str, Any]:
    body = {k: statement.get(k) for k in ("town", "login_id", "at", "by", "epoch")}
    if body["town"] != public.town or body["epoch"] != public.epoch:
        raise ClerkRecordError("clerk revocation for another town or key epoch")
    try:
        public.verify_key.verify(
            REVOCATION_CONTEXT + _canonical(body), bytes.fromhex(str(statement["signature"]))
        )
    except (nacl.exceptions.BadSignatureError, KeyError, ValueError) as exc:
        raise ClerkRecordError("clerk revocation signature does not verify") from exc
    return body
