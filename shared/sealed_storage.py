"""Encryption at rest as a storage wrapper: `SealedStorage` implements the `Storage`
protocol over another `Storage`, sealing every value into a blob (shared/blobs.py) on the
way in and opening it on the way out.

The inner store holds only blobs. Each blob's header names the town and, as its document,
the storage key it was saved under (parts joined by U+001F, which no key part may
contain); the header is authenticated twice (AEAD associated data and the writer's
signature), and `load` refuses a blob whose header names another town or key — so a blob
cannot be moved to another key, or another town's store, undetected.

A store built without a `KeyRing` (a box where no clerk of the town has logged in yet)
can still save — sealing needs only the town's public key — but `load` and `load_range`
raise `Sealed`. `remove` needs no key.

Each saved value gets the next writer sequence number: by default a counter that starts
at the current time in microseconds and then rises by at least one per blob, so it keeps
rising across restarts without being persisted (given the box's guarded clock).

Errors: `Sealed` (the town is locked on this box); `MisplacedBlob` (a `BlobError`: the
blob belongs to another key or town); every `BlobError` of shared/blobs.py passes through
unchanged (tampering, unknown writer); `StorageError` for a bad key, as the seam says.
Nothing is ever changed or removed in the inner store when a load fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Self

from nacl.signing import SigningKey

from shared.blobs import (
    DEFAULT_MAX_PLAINTEXT,
    BlobError,
    BlobFields,
    WriterLookup,
    open_blob,
    seal_blob,
)
from shared.crypto import KeyRing, TownKeys, TownPublic
from shared.storage import Storage, StorageError, StorageKey, check_key

_KEY_SEPARATOR = "\x1f"
_MAX_DOCUMENT_BYTES = 0xFFFF


class Sealed(Exception):
    """The town's data is locked on this box: no clerk of the town has logged in since
    the last restart. `str()` is for the clerk; `detail` for the log."""

    def __init__(self, town: str) -> None:
        super().__init__("この町のデータは施錠されています。この町の職員がログインすると開きます。")
        self.town = town
        self.detail = f"town {town!r} is sealed on this box (no key ring)"


class MisplacedBlob(BlobError):
    """A valid blob stored under a key or in a town store it was not written for."""


def document_name(key: StorageKey) -> str:
    """The blob document name for a storage key: its parts joined by U+001F."""
    return _KEY_SEPARATOR.join(key)


class SealedStorage:
    def __init__(
        self,
        inner: Storage,
        town_public: TownPublic,
        writer_signing_key: SigningKey,
        writer_id: str,
        keyring: KeyRing | None,
        writer_lookup: WriterLookup,
        *,
        max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
        first_sequence: int | None = None,
    ) -> None:
        if not writer_id or len(writer_id.encode()) > 255:
            raise ValueError("writer id must be 1..255 UTF-8 bytes")
        self._inner = inner
        self._public = town_public
        self._signing = writer_signing_key
        self._writer_id = writer_id
        self._lookup = writer_lookup
        self._max = max_plaintext
        self._keyring: KeyRing | None = None
        self._lock = threading.Lock()
        self._last_seq = (first_sequence - 1) if first_sequence is not None else -1
        self._clock_sequence = first_sequence is None
        if keyring is not None:
            self.unlock(keyring)

    @classmethod
    def ephemeral(cls, inner: Storage, town: str = "15307") -> Self:
        """A store sealed to freshly generated keys that live only in this object: what
        is saved cannot be read once it is gone. For tests, benchmarks and demos."""
        town_keys = TownKeys.generate(town)
        writer = SigningKey.generate()
        writer_id = "ephemeral-writer"
        return cls(
            inner,
            town_keys.public,
            writer,
            writer_id,
            KeyRing(town, [town_keys]),
            {writer_id: writer.verify_key}.get,
        )

    # ------------------------------------------------------------------ lock state

    @property
    def town(self) -> str:
        return self._public.town

    @property
    def sealed(self) -> bool:
        return self._keyring is None

    def unlock(self, keyring: KeyRing) -> None:
        """Open the town on this store (a clerk of the town has logged in)."""
        if keyring.town != self._public.town:
            raise ValueError(f"key ring of {keyring.town!r} for a store of {self.town!r}")
        self._keyring = keyring

    def lock(self) -> None:
        """Forget the key ring (the town's last session ended)."""
        self._keyring = None

    def __repr__(self) -> str:
        state = "sealed" if self.sealed else "open"
        return f"SealedStorage(town={self.town!r}, writer={self._writer_id!r}, {state})"

    # ------------------------------------------------------------------ Storage

    def _next_seq(self) -> int:
        with self._lock:
            seq = self._last_seq + 1
            if self._clock_sequence:
                seq = max(seq, time.time_ns() // 1000)
            self._last_seq = seq
            return seq

    def _seal(self, key: StorageKey, data: bytes) -> bytes:
        check_key(key)
        document = document_name(key)
        if len(document.encode()) > _MAX_DOCUMENT_BYTES:
            raise StorageError(f"storage key too long for a blob header: {key!r}")
        fields = BlobFields(document, self._writer_id, self._next_seq())
        return seal_blob(bytes(data), fields, self._public, self._signing, max_plaintext=self._max)

    def _open(self, key: StorageKey, blob: bytes) -> bytes:
        if self._keyring is None:
            raise Sealed(self.town)
        header, plaintext = open_blob(blob, self._keyring, self._lookup, max_plaintext=self._max)
        if header.town != self.town or header.document != document_name(key):
            raise MisplacedBlob(
                f"blob written for town {header.town!r} document {header.document!r} "
                f"found under {key!r} in the store of {self.town!r}"
            )
        return plaintext

    def load(self, key: StorageKey) -> bytes | None:
        check_key(key)
        if self._keyring is None:
            raise Sealed(self.town)
        blob = self._inner.load(key)
        return None if blob is None else self._open(key, blob)

    def save(self, key: StorageKey, data: bytes) -> None:
        self._inner.save(key, self._seal(key, data))

    def load_range(self, prefix: StorageKey) -> list[tuple[StorageKey, bytes]]:
        if self._keyring is None:
            raise Sealed(self.town)
        return [(key, self._open(key, blob)) for key, blob in self._inner.load_range(prefix)]

    def remove(self, key: StorageKey) -> None:
        self._inner.remove(key)

    def save_many(self, items: Iterable[tuple[StorageKey, bytes]]) -> None:
        """All values are sealed first, so a bad key refuses the whole batch before the
        inner store sees any of it."""
        self._inner.save_many([(key, self._seal(key, data)) for key, data in items])

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
