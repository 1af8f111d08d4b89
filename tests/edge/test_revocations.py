"""The signed revocation list of box keys (edge/revocations.py), in process: what a box
takes (root-chained issuer, valid signature, higher sequence) and what it refuses, and
that a peer's anchors are refused once the list names its key (a refused LAN peer:
tests/edge/test_box_revocations.py, real processes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from cloud.anchors import AnchorRefused
from edge.peer_anchors import accept_peer_statement
from edge.revocations import (
    FILE,
    RevocationError,
    RevocationStore,
    sign_list,
    verify_list,
)
from shared.crypto import FederationRoot, issue_issuer_certificate
from shared.storage import MemoryStorage

NOW = datetime.now(UTC)


def _issuer(root: FederationRoot) -> tuple[SigningKey, object]:
    key = SigningKey.generate()
    cert = issue_issuer_certificate(
        root, key.verify_key, key.verify_key.to_curve25519_public_key(),
        issued_at=NOW - timedelta(hours=1), expires_at=NOW + timedelta(days=30),
    )  # fmt: skip
    return key, cert


def _entry(box: str, key: SigningKey) -> dict[str, object]:
    return {"box": box, "town": "15307", "key": bytes(key.verify_key).hex(), "revoked_at": 1.0}


def test_a_box_keeps_only_newer_lists_signed_by_a_root_certified_issuer(tmp_path: Path) -> None:
    root, stranger = FederationRoot.generate(), FederationRoot.generate()
    key, cert = _issuer(root)
    lost, kept = SigningKey.generate(), SigningKey.generate()
    first = sign_list(key, cert, 1, NOW, [_entry("box-a", lost)])  # type: ignore[arg-type]
    second = sign_list(key, cert, 2, NOW, [_entry("box-a", lost), _entry("box-b", kept)])  # type: ignore[arg-type]
    store = RevocationStore(tmp_path, lambda: root.verify_key)
    assert store.reason(lost.verify_key) is None
    assert store.offer(first) is True
    assert store.reason(lost.verify_key) == "box 'box-a' is revoked"
    assert store.reason(kept.verify_key) is None
    assert store.offer(second) is True
    assert store.reason(kept.verify_key)
    # an older or the same sequence never replaces the newer list (a replay cannot un-revoke)
    assert store.offer(first) is False
    assert store.offer(second) is False
    assert store.sequence == 2 and store.reason(kept.verify_key)
    # kept across a restart
    again = RevocationStore(tmp_path, lambda: root.verify_key)
    assert again.sequence == 2 and again.reason(kept.verify_key)

    # forged: another root's issuer, a changed list, a box key signing its own list
    other_key, other_cert = _issuer(stranger)
    with pytest.raises(RevocationError, match="issuer"):
        store.offer(sign_list(other_key, other_cert, 9, NOW, []))  # type: ignore[arg-type]
    tampered = json.loads(json.dumps(second))
    tampered["list"]["sequence"] = 10
    tampered["list"]["revoked"] = []
    with pytest.raises(RevocationError, match="not signed"):
        store.offer(tampered)
    with pytest.raises(RevocationError, match="not signed"):
        store.offer(sign_list(lost, cert, 11, NOW, []))  # type: ignore[arg-type]
    with pytest.raises(RevocationError, match="malformed"):
        verify_list({"list": {}}, root.verify_key, now=NOW)
    expired = sign_list(key, cert, 12, NOW, [])  # type: ignore[arg-type]
    with pytest.raises(RevocationError, match="issuer"):
        verify_list(expired, root.verify_key, now=NOW + timedelta(days=60))
    assert store.sequence == 2 and store.reason(kept.verify_key)
    # a stored file that was tampered with is not trusted
    (tmp_path / FILE).write_text(json.dumps(tampered))
    assert RevocationStore(tmp_path, lambda: root.verify_key).current is None


def test_a_revoked_key_is_refused_for_its_anchors(tmp_path: Path) -> None:
    root = FederationRoot.generate()
    key, cert = _issuer(root)
    lost = SigningKey.generate()
    store = RevocationStore(tmp_path, lambda: root.verify_key)
    store.offer(sign_list(key, cert, 1, NOW, [_entry("box-a", lost)]))  # type: ignore[arg-type]

    # anchors: the check runs before anything is stored
    from test_peer_anchors import _cert_for

    box_cert = _cert_for(root, "box-a", lost)
    body = {
        "statement": {"v": 1, "box": "box-a", "at": 1.0, "heads": {}},
        "key": bytes(lost.verify_key).hex(),
        "signature": "",
        "certificate": box_cert.to_json(),
    }
    from cloud.anchors import CONTEXT, canonical

    body["signature"] = lost.sign(CONTEXT + canonical(body["statement"])).signature.hex()
    storage = MemoryStorage()
    accepted = accept_peer_statement(
        storage, body, root=root.verify_key, own_box="box-b", now=NOW.timestamp()
    )
    assert accepted["stored"] == 0
    with pytest.raises(AnchorRefused, match="revocation list"):
        accept_peer_statement(
            storage, body, root=root.verify_key, own_box="box-b", now=NOW.timestamp(),
            revoked=store.reason,
        )  # fmt: skip
