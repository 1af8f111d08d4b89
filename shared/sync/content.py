"""The plaintext sealed inside a sync blob: an inner header, then Loro bytes.

The blob's cleartext header (`shared.blobs`) says which town, document, writer and
sequence number a blob belongs to; relays route on it without reading anything. The
writer could still lie in it, so the same facts are repeated *inside* the encrypted
plaintext, and a reader that opens the blob compares the two (BRIEF §3: "a reader checks a
header against the blob's real contents and flags a mismatch").

    offset  size  field
    0       4     magic "RKSC"
    4       1     content version (1)
    5       1     kind: 0 = Loro update (delta), 1 = Loro snapshot
    6       2     meta length M, u16 big-endian
    8       M     meta: canonical JSON {"document", "seq", "town", "writer"}
    8+M     …     Loro bytes (`RecordDocument.export_updates` / `export_snapshot`)
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass

from shared.blobs import BlobHeader
from shared.sync.errors import ContentError

MAGIC = b"RKSC"
VERSION = 1
_FIXED = struct.Struct(">4sBBH")


class Kind(enum.IntEnum):
    UPDATE = 0
    SNAPSHOT = 1


@dataclass(frozen=True, slots=True)
class Content:
    town: str
    document: str  # "town/name", as in the blob header
    writer: str
    seq: int
    kind: Kind
    data: bytes


def pack(content: Content) -> bytes:
    meta = json.dumps(
        {
            "document": content.document,
            "seq": content.seq,
            "town": content.town,
            "writer": content.writer,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    if len(meta) > 0xFFFF:
        raise ContentError("content meta too long")
    return _FIXED.pack(MAGIC, VERSION, int(content.kind), len(meta)) + meta + content.data


def unpack(plaintext: bytes) -> Content:
    if len(plaintext) < _FIXED.size:
        raise ContentError("sync content truncated")
    magic, version, kind, meta_len = _FIXED.unpack_from(plaintext)
    if magic != MAGIC:
        raise ContentError("not a sync content record (bad magic)")
    if version != VERSION:
        raise ContentError(f"unsupported sync content version {version}")
    try:
        kind_value = Kind(kind)
    except ValueError as exc:
        raise ContentError(f"unknown content kind {kind}") from exc
    end = _FIXED.size + meta_len
    if len(plaintext) < end:
        raise ContentError("sync content meta truncated")
    try:
        meta = json.loads(plaintext[_FIXED.size : end].decode())
        return Content(
            town=str(meta["town"]),
            document=str(meta["document"]),
            writer=str(meta["writer"]),
            seq=int(meta["seq"]),
            kind=kind_value,
            data=plaintext[end:],
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ContentError(f"sync content meta malformed: {exc}") from exc


def mismatches(header: BlobHeader, content: Content) -> list[str]:
    """The fields where the cleartext header and the sealed contents disagree."""
    found = []
    if header.town != content.town:
        found.append(f"town: header {header.town!r}, contents {content.town!r}")
    if header.document != content.document:
        found.append(f"document: header {header.document!r}, contents {content.document!r}")
    if header.writer_id != content.writer:
        found.append("writer differs between header and contents")
    if header.writer_seq != content.seq:
        found.append(f"seq: header {header.writer_seq}, contents {content.seq}")
    if not content.document.startswith(content.town + "/"):
        found.append(f"document {content.document!r} is not of town {content.town!r}")
    return found
