"""The key ceremony's part in box enrolment (docs/operations.md §2): the federation root
certifies the hub's enrolment issuer key, which then signs box certificates.

    init_issuer      at the hub: pin the root, make the issuer key (sealed under the hub
                     passphrase), return the certification request
    certify_request  in the ceremony (offline machine): the root signs the request
    install_issuer   at the hub: install that certificate, checked against the pinned root

`renkei enrolment init|certify|install` are these steps on three machines; `renkei demo`
plays them on one. Errors: `EnrolmentError` (cloud/enrolment.py) for what the hub
refuses; `certify_request` raises ValueError, KeyError or CryptoError for a request it
will not sign.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.public import PublicKey
from nacl.signing import VerifyKey

from cloud.enrolment import EnrolmentError, Registry, create_issuer_key, verify_issuer_for
from shared.crypto import Certificate, FederationRoot, issue_issuer_certificate

REQUEST_KIND = "renkei-enrolment-issuer-request/1"


def init_issuer(data_dir: Path, root: str, passphrase: str) -> dict[str, Any]:
    """Pin `root` (64 hex digits) and make the hub's enrolment key; the request for the
    ceremony. Refuses a second key, and a root other than the one pinned."""
    registry = Registry(data_dir / "hub.db")
    try:
        pinned = registry.setting("root")
        if pinned is not None and pinned != root:
            raise EnrolmentError(
                "root",
                409,
                "このハブには別の連合ルートがすでに登録されています。",
                "a different federation root is already pinned",
            )
        key = create_issuer_key(data_dir, passphrase)
        registry.set_setting("root", root)
        registry.set_setting("issuer_key", bytes(key.verify_key).hex())
    finally:
        registry.close()
    return {
        "kind": REQUEST_KIND,
        "subject": "hub",
        "ed25519": bytes(key.verify_key).hex(),
        "x25519": bytes(key.verify_key.to_curve25519_public_key()).hex(),
        "federation_root": root,
    }


def certify_request(request: dict[str, Any], root: FederationRoot, days: int) -> Certificate:
    """The root's signature on a hub's request, valid `days` (from five minutes ago, for
    clocks a little behind)."""
    if request.get("federation_root") not in (None, bytes(root.verify_key).hex()):
        raise ValueError("the request pins another federation root")
    now = datetime.now(UTC)
    return issue_issuer_certificate(
        root,
        VerifyKey(bytes.fromhex(request["ed25519"])),
        PublicKey(bytes.fromhex(request["x25519"])),
        subject=str(request.get("subject", "hub")),
        issued_at=now - timedelta(minutes=5),
        expires_at=now + timedelta(days=days),
    )


def install_issuer(data_dir: Path, cert: Certificate) -> Certificate:
    """Install the issuer certificate at the hub (signed by the pinned root, valid now, for
    the key `init_issuer` made). The hub takes enrolments after its next start."""
    registry = Registry(data_dir / "hub.db")
    try:
        checked = verify_issuer_for(registry, cert)
        registry.set_setting("issuer", json.dumps(checked.to_json()))
    finally:
        registry.close()
    return checked
