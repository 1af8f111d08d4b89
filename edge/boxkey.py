"""The box's own Ed25519 key (`data_dir/box.key`): its identity as an audit and register
writer, certified at enrolment. A box key, not a town key: it opens nothing."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

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
