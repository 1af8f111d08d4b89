"""The sync package's exceptions (hierarchy drawn in `shared.sync`'s docstring)."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the sync package raises."""


class WireError(SyncError):
    """A message that does not decode: bad framing, a bound exceeded, malformed JSON."""


class ContentError(SyncError):
    """A blob's plaintext is not a sync content record, or disagrees with its header."""


class ProtocolRefused(SyncError):
    """The peer refused the exchange; `code` says why (nonce, protocol, auth, request)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
