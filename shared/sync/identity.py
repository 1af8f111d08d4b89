"""Self-certifying writer and peer ids.

A writer id is "ed25519:" followed by the 64 hex digits of the writer's Ed25519 verify key,
so any replica — a relay that holds no key at all — can check a blob's signature without
a directory, and nobody can write into another writer's sequence space. Whether a writer
or a peer is *admitted* (enrolled) is a separate policy decided by the caller.

A wiped or replaced box generates a new identity: a writer's sequence numbers are never
restarted under the same id (that would make two different blobs for one (writer, seq)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

PREFIX = "ed25519:"

WriterLookup = Callable[[str], VerifyKey | None]


def writer_id_of(verify_key: VerifyKey) -> str:
    return PREFIX + bytes(verify_key).hex()


def verify_key_of(writer_id: str) -> VerifyKey | None:
    """The key a self-certifying id names, or None if the id is not of that form."""
    if not writer_id.startswith(PREFIX) or len(writer_id) != len(PREFIX) + 64:
        return None
    try:
        return VerifyKey(bytes.fromhex(writer_id[len(PREFIX) :]))
    except (ValueError, nacl.exceptions.CryptoError):
        return None


def lookup(extra: Mapping[str, VerifyKey] | None = None) -> WriterLookup:
    """A writer lookup for `shared.blobs.verify_blob`: self-certifying ids, plus any
    explicitly pinned ids (e.g. a legacy "hub" writer)."""
    pinned = dict(extra or {})

    def find(writer_id: str) -> VerifyKey | None:
        return pinned.get(writer_id) or verify_key_of(writer_id)

    return find


class Identity:
    """A replica's signing identity: writes its blobs and signs its sync requests."""

    __slots__ = ("signing_key", "writer_id")

    def __init__(self, signing_key: SigningKey) -> None:
        self.signing_key = signing_key
        self.writer_id = writer_id_of(signing_key.verify_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(SigningKey.generate())

    def to_bytes(self) -> bytes:
        return bytes(self.signing_key)

    @classmethod
    def from_bytes(cls, seed: bytes) -> Identity:
        return cls(SigningKey(seed))

    def __repr__(self) -> str:
        return f"Identity({self.writer_id[:20]}…)"

    __str__ = __repr__
