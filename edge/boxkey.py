"""The box's own Ed25519 key (`data_dir/box.key`): its identity as an audit and register
writer, certified at enrolment. A box key, not a town key: it opens nothing."""

from __future__ import annotations

import json
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from shared.audit import AuditWriter, box_writer_id
from shared.crypto import key_id
from shared.issuance.numbering import box_code_for

KEY_FILE = "box.key"


def box_signing_key(data_dir: Path) -> SigningKey:
    path = data_dir / KEY_FILE
    if not path.exists():
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(bytes(SigningKey.generate()))
        temporary.chmod(0o600)
        temporary.replace(path)
    return SigningKey(path.read_bytes())


def box_code(data_dir: Path) -> str:
    """The box's part of every 発行番号 it allocates (see `box_code_for`)."""
    return box_code_for(bytes(box_signing_key(data_dir).verify_key))


def own_writer_ids(box_id: str, key: VerifyKey) -> tuple[str, str]:
    """The audit writer ids a box key may write under: `box:<box id>` (the box's first
    certified key) or `box:<box id>:<16 hex of its key id>` (a later one)."""
    return box_writer_id(box_id), box_writer_id(box_id, key_id(key)[:16])


def box_audit_writer(data_dir: Path, box_id: str) -> AuditWriter:
    """The box as an audit writer: its key, under the chain the hub named at enrolment
    (`federation.json` "audit_writer"; docs/audit.md §1), `box:<box id>` before it."""
    key = box_signing_key(data_dir)
    try:
        settings = json.loads((data_dir / "federation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = {}
    if not isinstance(settings, dict):
        settings = {}
    named = settings.get("audit_writer")
    if settings.get("box") != box_id or named not in own_writer_ids(box_id, key.verify_key):
        named = box_writer_id(box_id)
    return AuditWriter(str(named), key)
