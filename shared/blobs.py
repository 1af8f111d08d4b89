"""The blob envelope: how every document, update and audit entry travels and rests.

A blob is compressed (zlib), encrypted under a fresh random 32-byte content key with
XChaCha20-Poly1305 (the cleartext header as associated data), the content key sealed to
the town's X25519 public key of the current epoch (libsodium sealed box), and the whole
signed by the writer's Ed25519 key. A writer therefore needs only the town's *public* key;
a relay can check a blob's structure and, with the writer directory, its signature, but
never read it. A blob's id is BLAKE2b-256 of all its bytes. Exact layout and test vectors:
docs/blob-format.md.

    offset  size  field
    0       4     magic "RKBL"
    4       1     format version (1)
    5       4     key epoch                      u32 big-endian
    9       8     writer sequence number         u64 big-endian
    17      8     plaintext length               u64 big-endian
    25      8     body length B (ciphertext+tag) u64 big-endian
    33      1     town code length T (≥1)
    34      1     writer id length W (≥1)
    35      2     document name length D (≥1)    u16 big-endian
    37      T+W+D town code, writer id, document name (UTF-8)
    H=37+T+W+D    — end of header (the AEAD's associated data) —
    H       80    sealed content key (crypto_box_seal of 32 bytes)
    H+80    24    nonce
    H+104   B     ciphertext of the zlib stream, with the 16-byte Poly1305 tag
    H+104+B 64    Ed25519 signature of "renkei blob v1" 0x00 ‖ BLAKE2b-512(bytes 0 … H+104+B)

Errors:

    BlobError
     ├── BlobFormatError      truncated, bad magic/version, inconsistent lengths, bad
     │                        UTF-8, a body that does not decompress to what the header says
     ├── BlobSignatureError   signature does not verify under the writer's enrolled key
     ├── UnknownWriter        the writer id is not enrolled (lookup returned None)
     ├── BlobDecryptError     no key for this town/epoch, or the sealed key or body will
     │                        not open (tampered, or sealed to another key)
     └── BlobTooLarge         plaintext above the reader's (or writer's) limit
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import nacl.exceptions
import nacl.hash
import nacl.utils
from nacl.encoding import RawEncoder
from nacl.public import SealedBox
from nacl.secret import Aead
from nacl.signing import SigningKey, VerifyKey

from shared.crypto import KeyRing, TownPublic

MAGIC = b"RKBL"
VERSION = 1
SEALED_KEY_SIZE = 80  # ephemeral X25519 public key 32 + content key 32 + Poly1305 tag 16
NONCE_SIZE = Aead.NONCE_SIZE  # 24
TAG_SIZE = Aead.MACBYTES  # 16
SIGNATURE_SIZE = 64
SIGN_CONTEXT = b"renkei blob v1\x00"
DEFAULT_MAX_PLAINTEXT = 256 * 1024 * 1024
COMPRESS_LEVEL = 1  # not part of the format (any zlib stream is valid); 6 would cost 2× for 1%

_FIXED = struct.Struct(">4sBIQQQBBH")  # 37 bytes: magic … document length
_MAX_U64 = 2**64 - 1

WriterLookup = Callable[[str], VerifyKey | None]

# ---------------------------------------------------------------------------- errors


class BlobError(Exception):
    """Base of every error reading or writing a blob."""


class BlobFormatError(BlobError):
    """Not a well-formed blob: truncated, bad magic or version, inconsistent lengths."""


class BlobSignatureError(BlobError):
    """The signature does not verify under the writer's enrolled key."""


class UnknownWriter(BlobError):
    """The blob names a writer the lookup does not know."""


class BlobDecryptError(BlobError):
    """No key for the blob's town and epoch, or its sealed key or body will not open."""


class BlobTooLarge(BlobError):
    """The plaintext is above the configured limit (zip-bomb guard)."""


# ---------------------------------------------------------------------------- header


@dataclass(frozen=True, slots=True)
class BlobFields:
    """What a writer chooses for a blob; town and epoch come from the town's public key."""

    document: str
    writer_id: str
    writer_seq: int


@dataclass(frozen=True, slots=True)
class BlobHeader:
    version: int
    town: str
    document: str
    epoch: int
    writer_id: str
    writer_seq: int
    plain_length: int
    body_length: int  # ciphertext including the tag


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: BlobHeader
    header_bytes: bytes
    sealed_key: bytes
    nonce: bytes
    ciphertext: bytes
    signature: bytes


def _encode_str(value: str, what: str, limit: int) -> bytes:
    raw = value.encode()
    if not 1 <= len(raw) <= limit:
        raise BlobFormatError(f"{what} must be 1..{limit} UTF-8 bytes, not {len(raw)}")
    return raw


def _encode_header(
    town: str, epoch: int, fields: BlobFields, plain_length: int, body_length: int
) -> bytes:
    town_b = _encode_str(town, "town code", 255)
    writer_b = _encode_str(fields.writer_id, "writer id", 255)
    doc_b = _encode_str(fields.document, "document name", 0xFFFF)
    if not 0 <= fields.writer_seq <= _MAX_U64:
        raise BlobFormatError("writer sequence number must fit in 64 bits")
    if not 0 <= epoch < 2**32:
        raise BlobFormatError("key epoch must fit in 32 bits")
    fixed = _FIXED.pack(
        MAGIC,
        VERSION,
        epoch,
        fields.writer_seq,
        plain_length,
        body_length,
        len(town_b),
        len(writer_b),
        len(doc_b),
    )
    return fixed + town_b + writer_b + doc_b


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise BlobFormatError(f"{what} is not valid UTF-8") from exc


def _parse(blob: bytes) -> _Parsed:
    if len(blob) < _FIXED.size:
        raise BlobFormatError(f"truncated blob: {len(blob)} bytes, shorter than the header")
    magic, version, epoch, seq, plain_len, body_len, t_len, w_len, d_len = _FIXED.unpack_from(blob)
    if magic != MAGIC:
        raise BlobFormatError("not a Renkei blob (bad magic)")
    if version != VERSION:
        raise BlobFormatError(f"unsupported blob format version {version}")
    if t_len == 0 or w_len == 0 or d_len == 0:
        raise BlobFormatError("empty town code, writer id or document name")
    if body_len < TAG_SIZE:
        raise BlobFormatError("body shorter than its authentication tag")
    head_end = _FIXED.size + t_len + w_len + d_len
    expected = head_end + SEALED_KEY_SIZE + NONCE_SIZE + body_len + SIGNATURE_SIZE
    if len(blob) != expected:
        raise BlobFormatError(
            f"blob is {len(blob)} bytes but its header describes {expected} (truncated or padded)"
        )
    pos = _FIXED.size
    town = _decode(blob[pos : pos + t_len], "town code")
    pos += t_len
    writer_id = _decode(blob[pos : pos + w_len], "writer id")
    pos += w_len
    document = _decode(blob[pos : pos + d_len], "document name")
    key_end = head_end + SEALED_KEY_SIZE
    nonce_end = key_end + NONCE_SIZE
    body_end = nonce_end + body_len
    return _Parsed(
        header=BlobHeader(version, town, document, epoch, writer_id, seq, plain_len, body_len),
        header_bytes=blob[:head_end],
        sealed_key=blob[head_end:key_end],
        nonce=blob[key_end:nonce_end],
        ciphertext=blob[nonce_end:body_end],
        signature=blob[body_end:],
    )


def _signed_message(signed_part: bytes) -> bytes:
    # Ed25519 hashes its message twice; signing a 64-byte digest keeps 100 MB blobs cheap.
    return SIGN_CONTEXT + nacl.hash.blake2b(signed_part, digest_size=64, encoder=RawEncoder)


# ---------------------------------------------------------------------------- API


def blob_id(blob: bytes) -> bytes:
    """Content address: BLAKE2b-256 of every byte of the blob, signature included."""
    return nacl.hash.blake2b(blob, digest_size=32, encoder=RawEncoder)


def seal_blob(
    plaintext: bytes,
    header_fields: BlobFields,
    town_public: TownPublic,
    writer_signing_key: SigningKey,
    *,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
) -> bytes:
    """Seal `plaintext` for the town of `town_public` (at its epoch). Needs no private key
    of the town: whoever seals cannot open what they wrote."""
    if len(plaintext) > max_plaintext:
        raise BlobTooLarge(f"plaintext of {len(plaintext)} bytes above limit {max_plaintext}")
    body = zlib.compress(plaintext, COMPRESS_LEVEL)
    content_key = nacl.utils.random(Aead.KEY_SIZE)
    header = _encode_header(
        town_public.town, town_public.epoch, header_fields, len(plaintext), len(body) + TAG_SIZE
    )
    sealed_key = SealedBox(town_public.sealing_key).encrypt(content_key)
    nonce = nacl.utils.random(NONCE_SIZE)
    ciphertext = Aead(content_key).encrypt(body, header, nonce).ciphertext
    signed_part = b"".join((header, sealed_key, nonce, ciphertext))
    signature = writer_signing_key.sign(_signed_message(signed_part)).signature
    return signed_part + signature


def read_header(blob: bytes) -> BlobHeader:
    """The cleartext header, checking structure only (no key, no signature): for relays
    and indexes. Trust nothing in it until `verify_blob` has passed."""
    return _parse(blob).header


def _verify(parsed: _Parsed, blob: bytes, writer_lookup: WriterLookup) -> None:
    key = writer_lookup(parsed.header.writer_id)
    if key is None:
        raise UnknownWriter(f"writer {parsed.header.writer_id!r} is not enrolled")
    try:
        key.verify(_signed_message(blob[:-SIGNATURE_SIZE]), parsed.signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise BlobSignatureError(
            f"signature of writer {parsed.header.writer_id!r} does not verify"
        ) from exc


def verify_blob(blob: bytes, writer_verify_key_lookup: WriterLookup) -> BlobHeader:
    """Structure and signature, by the writer's enrolled Ed25519 key; no town key needed."""
    parsed = _parse(blob)
    _verify(parsed, blob, writer_verify_key_lookup)
    return parsed.header


def open_blob(
    blob: bytes,
    keyring: KeyRing,
    writer_lookup: WriterLookup,
    *,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
) -> tuple[BlobHeader, bytes]:
    """Verify, unseal the content key with the epoch's town key, decrypt with the header
    as associated data, and decompress to at most `max_plaintext` bytes."""
    parsed = _parse(blob)
    _verify(parsed, blob, writer_lookup)
    header = parsed.header
    if header.town != keyring.town:
        raise BlobDecryptError(f"blob of town {header.town!r} offered to {keyring.town!r}")
    keys = keyring.get(header.epoch)
    if keys is None:
        raise BlobDecryptError(f"no key for town {header.town!r} epoch {header.epoch}")
    if header.plain_length > max_plaintext:
        raise BlobTooLarge(
            f"blob declares {header.plain_length} bytes, above limit {max_plaintext}"
        )
    try:
        content_key = SealedBox(keys.sealing_key).decrypt(parsed.sealed_key)
    except nacl.exceptions.CryptoError as exc:
        raise BlobDecryptError("content key does not unseal with the town's key") from exc
    if len(content_key) != Aead.KEY_SIZE:
        raise BlobDecryptError("sealed content key has the wrong length")
    try:
        body = Aead(content_key).decrypt(parsed.ciphertext, parsed.header_bytes, parsed.nonce)
    except nacl.exceptions.CryptoError as exc:
        raise BlobDecryptError("body does not decrypt (tampered header or body)") from exc
    return header, _decompress(body, header.plain_length)


def _decompress(body: bytes, plain_length: int) -> bytes:
    # Never inflate more than one byte past what the header declares (itself ≤ the limit),
    # whatever the stream would expand to.
    inflater = zlib.decompressobj()
    try:
        plaintext = inflater.decompress(body, plain_length + 1)
    except zlib.error as exc:
        raise BlobFormatError(f"body is not a valid zlib stream: {exc}") from exc
    if len(plaintext) != plain_length or not inflater.eof or inflater.unused_data:
        raise BlobFormatError("body does not decompress to exactly the declared plaintext length")
    return plaintext
