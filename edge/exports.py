"""Exports that leave the box as files (the 全住民一覧 CSV, the intake list): sealed to
the town, signed by the box, audited.

Why sealed to the town rather than a password: the people who may hold a town's full
resident list are that town's own clerks. Sealing needs no secret to travel with the file
(a password would be phoned or written on the USB stick beside it, or be weak enough to
guess offline); the file opens only with a town clerk's own login (`renkei export open`),
and the box that wrote it cannot read it back once the town is sealed again.

A file is one blob of docs/blob-format.md: document ``export␟KIND␟NAME``, writer
``export:BOX``, the box's Ed25519 key, the content sealed to the town's current public
key. `open_export` checks the signature against the writing box's key and decrypts with
the town's key ring.
"""

from __future__ import annotations

import time

from nacl.signing import SigningKey, VerifyKey

from shared.blobs import BlobFields, open_blob, read_header, seal_blob
from shared.crypto import KeyRing, TownPublic

MAX_EXPORT = 64 * 1024 * 1024
SUFFIX = ".rkx"


def writer_id(box_id: str) -> str:
    return f"export:{box_id}"


def seal_export(
    data: bytes, kind: str, name: str, town: TownPublic, box_id: str, key: SigningKey
) -> bytes:
    fields = BlobFields(f"export\x1f{kind}\x1f{name}", writer_id(box_id), time.time_ns())
    return seal_blob(data, fields, town, key, max_plaintext=MAX_EXPORT)


def open_export(blob: bytes, keyring: KeyRing, box_key: VerifyKey) -> tuple[str, bytes]:
    """(document name, plaintext); raises shared.blobs errors for a foreign, altered or
    unreadable file."""
    header = read_header(blob)

    def lookup(writer: str) -> VerifyKey | None:
        return box_key if writer == header.writer_id and writer.startswith("export:") else None

    opened, plaintext = open_blob(blob, keyring, lookup, max_plaintext=MAX_EXPORT)
    return opened.document, plaintext
