"""The blob envelope (shared/blobs.py, docs/blob-format.md): round trips, tampering,
truncation, unknown writers, keys of other towns and epochs, the zip-bomb guard, and the
documented test vector rebuilt independently from the page."""

from __future__ import annotations

import os
import re
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.public import Box, PrivateKey, SealedBox
from nacl.secret import Aead
from nacl.signing import SigningKey, VerifyKey

from shared.blobs import (
    COMPRESS_LEVEL,
    BlobDecryptError,
    BlobError,
    BlobFields,
    BlobFormatError,
    BlobHeader,
    BlobSignatureError,
    BlobTooLarge,
    UnknownWriter,
    blob_id,
    open_blob,
    read_header,
    seal_blob,
    verify_blob,
)
from shared.crypto import KeyRing, TownKeys, TownPublic, rotate

DOC = Path(__file__).parents[2] / "docs" / "blob-format.md"

TOWN = TownKeys.generate("15307")
RING = KeyRing("15307", [TOWN])
WRITER = SigningKey.generate()
WRITER_ID = "box-15307-a"
FIELDS = BlobFields("registry\x1fshard-03", WRITER_ID, 42)


def lookup(writer_id: str) -> VerifyKey | None:
    return WRITER.verify_key if writer_id == WRITER_ID else None


def seal(plaintext: bytes, fields: BlobFields = FIELDS, public: TownPublic | None = None) -> bytes:
    return seal_blob(plaintext, fields, public or TOWN.public, WRITER)


def resign(blob: bytes, key: SigningKey = WRITER) -> bytes:
    """What an enrolled but malicious writer can do: sign whatever bytes it likes."""
    digest = blake2b(blob[:-64], digest_size=64, encoder=RawEncoder)
    return blob[:-64] + key.sign(b"renkei blob v1\x00" + digest).signature


SAMPLE = seal("世帯 1234: 辻\U000e0102 太郎, 𠮷田 花子\n".encode() * 8)


# ---------------------------------------------------------------------------- round trips


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=4096), seq=st.integers(0, 2**64 - 1))
def test_round_trip_arbitrary_plaintexts(plaintext: bytes, seq: int) -> None:
    fields = BlobFields("audit\x1fbox-15307-a", WRITER_ID, seq)
    blob = seal(plaintext, fields)
    header, opened = open_blob(blob, RING, lookup)
    assert opened == plaintext
    assert header == BlobHeader(
        version=1,
        town="15307",
        document="audit\x1fbox-15307-a",
        epoch=1,
        writer_id=WRITER_ID,
        writer_seq=seq,
        plain_length=len(plaintext),
        body_length=header.body_length,
    )
    assert read_header(blob) == header == verify_blob(blob, lookup)


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"\x00", os.urandom(3 * 1024 * 1024), b"\x00" * (20 * 1024 * 1024)],
    ids=["empty", "one-byte", "3MiB-random", "20MiB-zeros"],
)
def test_round_trip_empty_and_large(plaintext: bytes) -> None:
    assert open_blob(seal(plaintext), RING, lookup)[1] == plaintext


def test_unicode_names_in_the_header() -> None:
    fields = BlobFields("住民\x1f辻\U000e0102", "窓口-1", 1)
    header, _ = open_blob(seal(b"x", fields), RING, {"窓口-1": WRITER.verify_key}.get)
    assert (header.document, header.writer_id) == ("住民\x1f辻\U000e0102", "窓口-1")


def test_every_seal_is_fresh_and_the_id_is_the_content_hash() -> None:
    one, two = seal(b"same"), seal(b"same")
    assert one != two and blob_id(one) != blob_id(two)
    assert blob_id(one) == blake2b(one, digest_size=32, encoder=RawEncoder)
    assert len(blob_id(one)) == 32


def test_a_writer_with_only_the_public_key_writes_what_the_keyring_opens() -> None:
    public_only = TownPublic.from_bytes(TOWN.public.to_bytes())  # all a writer is given
    blob = seal_blob(b"failed login: sato", FIELDS, public_only, WRITER)
    assert open_blob(blob, RING, lookup)[1] == b"failed login: sato"


# ---------------------------------------------------------------------------- tampering


def _flip(blob: bytes, position: int, mask: int) -> bytes:
    return blob[:position] + bytes([blob[position] ^ mask]) + blob[position + 1 :]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_flipping_any_byte_is_rejected(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(SAMPLE) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = _flip(SAMPLE, position, mask)
    with pytest.raises(BlobError):
        open_blob(tampered, RING, lookup)
    with pytest.raises(BlobError):
        verify_blob(tampered, lookup)


def test_flipping_each_byte_in_turn_is_rejected() -> None:
    for position in range(len(SAMPLE)):
        with pytest.raises(BlobError):
            open_blob(_flip(SAMPLE, position, 0x01), RING, lookup)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_truncating_at_any_length_is_rejected(data: st.DataObject) -> None:
    length = data.draw(st.integers(0, len(SAMPLE) - 1), label="length")
    with pytest.raises(BlobFormatError):
        read_header(SAMPLE[:length])
    with pytest.raises(BlobFormatError):
        open_blob(SAMPLE[:length], RING, lookup)


def test_truncating_each_length_in_turn_and_padding_are_rejected() -> None:
    for length in range(len(SAMPLE)):
        with pytest.raises(BlobFormatError):
            open_blob(SAMPLE[:length], RING, lookup)
    with pytest.raises(BlobFormatError):
        open_blob(SAMPLE + b"\x00", RING, lookup)


def _regions(blob: bytes) -> dict[str, range]:
    head = 37 + blob[33] + blob[34] + int.from_bytes(blob[35:37], "big")
    body = int.from_bytes(blob[25:33], "big")
    return {
        "names": range(37, head),
        "sealed key": range(head, head + 80),
        "nonce": range(head + 80, head + 104),
        "ciphertext": range(head + 104, head + 104 + body),
        "signature": range(len(blob) - 64, len(blob)),
    }


@pytest.mark.parametrize("region", ["sealed key", "nonce", "ciphertext"])
def test_tampering_is_caught_by_the_signature(region: str) -> None:
    positions = _regions(SAMPLE)[region]
    for position in (positions[0], positions[len(positions) // 2], positions[-1]):
        with pytest.raises(BlobSignatureError):
            verify_blob(_flip(SAMPLE, position, 0x80), lookup)


@pytest.mark.parametrize("region", ["names", "sealed key", "nonce", "ciphertext"])
def test_tampering_is_caught_by_the_encryption_even_when_re_signed(region: str) -> None:
    # An enrolled writer can sign anything; the AEAD (header as associated data) and the
    # sealed box must still refuse a changed header, key, nonce or body.
    positions = _regions(SAMPLE)[region]
    position = positions[-1]  # the last byte of the document name, for "names"
    tampered = resign(_flip(SAMPLE, position, 0x01))
    with pytest.raises(BlobDecryptError):
        open_blob(tampered, RING, lookup)


def test_re_signing_untampered_bytes_still_opens() -> None:
    # The control for the test above: re-signing alone breaks nothing.
    assert open_blob(resign(SAMPLE), RING, lookup)[1] == open_blob(SAMPLE, RING, lookup)[1]


def test_unenrolled_writer_is_refused() -> None:
    stranger = SigningKey.generate()
    blob = seal_blob(b"x", BlobFields("doc", "box-99999-z", 1), TOWN.public, stranger)
    with pytest.raises(UnknownWriter):
        verify_blob(blob, lookup)
    with pytest.raises(UnknownWriter):
        open_blob(blob, RING, lookup)


def test_a_stranger_claiming_an_enrolled_writer_id_is_refused() -> None:
    blob = seal_blob(b"x", FIELDS, TOWN.public, SigningKey.generate())
    with pytest.raises(BlobSignatureError):
        open_blob(blob, RING, lookup)


# ---------------------------------------------------------------------------- keys


def test_keys_of_another_town_do_not_open() -> None:
    other = TownKeys.generate("15405")
    with pytest.raises(BlobDecryptError):
        open_blob(SAMPLE, KeyRing("15405", [other]), lookup)
    # another town's secret under this town's name does not unseal either
    impostor = TownKeys("15307", 1, other.sealing_key, other.signing_key)
    with pytest.raises(BlobDecryptError):
        open_blob(SAMPLE, KeyRing("15307", [impostor]), lookup)


def test_old_epochs_open_with_a_ring_that_keeps_them() -> None:
    new = rotate(TOWN)
    old_blob, new_blob = seal(b"before"), seal(b"after", public=new.public)
    assert read_header(new_blob).epoch == 2
    with pytest.raises(BlobDecryptError):
        open_blob(old_blob, KeyRing("15307", [new]), lookup)
    ring = KeyRing("15307", [TOWN, new])
    assert open_blob(old_blob, ring, lookup)[1] == b"before"
    assert open_blob(new_blob, ring, lookup)[1] == b"after"


# ---------------------------------------------------------------------------- size limits


def test_declared_size_above_the_limit_is_refused_before_decrypting() -> None:
    blob = seal(b"\x00" * 2_000_000)
    with pytest.raises(BlobTooLarge):
        open_blob(blob, RING, lookup, max_plaintext=1_000_000)
    with pytest.raises(BlobTooLarge):
        seal_blob(b"\x00" * 11, FIELDS, TOWN.public, WRITER, max_plaintext=10)


def test_a_lying_writer_cannot_make_a_reader_inflate_past_the_declared_size() -> None:
    bomb = zlib.compress(b"\x00" * 50_000_000, 9)  # ≈49 KB → 50 MB
    blob = build_blob(
        town_public=TOWN.public,
        writer=WRITER,
        fields=FIELDS,
        plain_length=1000,
        body=bomb,
        content_key=os.urandom(32),
        nonce=os.urandom(24),
        ephemeral_secret=os.urandom(32),
    )
    tracemalloc.start()
    try:
        with pytest.raises(BlobFormatError, match="declared plaintext length"):
            open_blob(blob, RING, lookup)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the 50 MB expansion never happened


def test_a_body_that_is_not_zlib_is_a_format_error() -> None:
    blob = build_blob(
        town_public=TOWN.public,
        writer=WRITER,
        fields=FIELDS,
        plain_length=5,
        body=b"plain",
        content_key=os.urandom(32),
        nonce=os.urandom(24),
        ephemeral_secret=os.urandom(32),
    )
    with pytest.raises(BlobFormatError):
        open_blob(blob, RING, lookup)


def test_error_hierarchy() -> None:
    for error in (BlobFormatError, BlobSignatureError, UnknownWriter, BlobDecryptError):
        assert issubclass(error, BlobError)
    assert issubclass(BlobTooLarge, BlobError)


# ---------------------------------------------------------------------------- test vector


def build_blob(
    *,
    town_public: TownPublic,
    writer: SigningKey,
    fields: BlobFields,
    plain_length: int,
    body: bytes,
    content_key: bytes,
    nonce: bytes,
    ephemeral_secret: bytes,
) -> bytes:
    """An independent writer built from docs/blob-format.md §2 alone, with every random
    input supplied by the caller (libsodium's crypto_box_seal spelled out)."""
    town, writer_id, doc = (
        s.encode() for s in (town_public.town, fields.writer_id, fields.document)
    )
    header = struct.pack(
        ">4sBIQQQBBH",
        b"RKBL",
        1,
        town_public.epoch,
        fields.writer_seq,
        plain_length,
        len(body) + 16,
        len(town),
        len(writer_id),
        len(doc),
    )
    header += town + writer_id + doc
    ephemeral = PrivateKey(ephemeral_secret)
    epk = bytes(ephemeral.public_key)
    seal_nonce = blake2b(epk + bytes(town_public.sealing_key), digest_size=24, encoder=RawEncoder)
    sealed_key = (
        epk + Box(ephemeral, town_public.sealing_key).encrypt(content_key, seal_nonce).ciphertext
    )
    ciphertext = Aead(content_key).encrypt(body, header, nonce).ciphertext
    signed = header + sealed_key + nonce + ciphertext
    digest = blake2b(signed, digest_size=64, encoder=RawEncoder)
    return signed + writer.sign(b"renkei blob v1\x00" + digest).signature


def documented_vector() -> dict[str, bytes]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```vector\n(.*?)```", text, re.S)
    assert block, "docs/blob-format.md has no ```vector block"
    values: dict[str, bytes] = {}
    name, size, hexdigits = "", 0, ""
    for line in [*block.group(1).splitlines(), "end (0 bytes)"]:
        if line.startswith(" "):
            hexdigits += line.strip()
            continue
        if name:
            values[name] = bytes.fromhex(hexdigits)
            assert len(values[name]) == size, name
        match = re.fullmatch(r"(\w+) \((\d+) bytes\)", line.strip())
        assert match, line
        name, size, hexdigits = match.group(1), int(match.group(2)), ""
    return values


VECTOR_FIELDS = BlobFields("registry/shard-03", "box-15307-a", 7)


def test_the_documented_vector_is_rebuilt_from_its_inputs() -> None:
    v = documented_vector()
    town = TownKeys("15307", 1, PrivateKey(v["town_x25519_secret"]), SigningKey(os.urandom(32)))
    writer = SigningKey(v["writer_ed25519_seed"])
    assert bytes(town.sealing_key.public_key) == v["town_x25519_public"]
    assert bytes(writer.verify_key) == v["writer_ed25519_public"]
    assert v["plaintext"] == "住民票の写し Renkei test vector\n".encode()
    assert zlib.decompress(v["compressed_body"]) == v["plaintext"]
    rebuilt = build_blob(
        town_public=town.public,
        writer=writer,
        fields=VECTOR_FIELDS,
        plain_length=len(v["plaintext"]),
        body=v["compressed_body"],
        content_key=v["content_key"],
        nonce=v["nonce"],
        ephemeral_secret=v["ephemeral_x25519_secret"],
    )
    assert rebuilt == v["blob"]
    assert (
        v["blob"] == v["header"] + v["sealed_key"] + v["nonce"] + v["ciphertext"] + v["signature"]
    )
    assert blob_id(v["blob"]) == v["blob_id"]
    assert v["sealed_key"][:32] == v["ephemeral_x25519_public"]
    assert v["sealed_box_nonce"] == blake2b(
        v["ephemeral_x25519_public"] + v["town_x25519_public"], digest_size=24, encoder=RawEncoder
    )
    assert v["signed_digest"] == blake2b(v["blob"][:-64], digest_size=64, encoder=RawEncoder)
    writer.verify_key.verify(b"renkei blob v1\x00" + v["signed_digest"], v["signature"])
    assert SealedBox(town.sealing_key).decrypt(v["sealed_key"]) == v["content_key"]


def test_the_documented_vector_opens_with_the_reader() -> None:
    v = documented_vector()
    town = TownKeys("15307", 1, PrivateKey(v["town_x25519_secret"]), SigningKey(os.urandom(32)))
    writer_key = VerifyKey(v["writer_ed25519_public"])
    header, plaintext = open_blob(
        v["blob"], KeyRing("15307", [town]), {"box-15307-a": writer_key}.get
    )
    assert plaintext == v["plaintext"]
    assert (header.town, header.epoch, header.document) == ("15307", 1, "registry/shard-03")
    assert (header.writer_id, header.writer_seq) == ("box-15307-a", 7)
    with pytest.raises(BlobError):
        open_blob(
            _flip(v["blob"], 100, 1), KeyRing("15307", [town]), {"box-15307-a": writer_key}.get
        )


def test_seal_blob_writes_the_documented_header() -> None:
    v = documented_vector()
    public = TownPublic(
        "15307", 1, PrivateKey(v["town_x25519_secret"]).public_key, WRITER.verify_key
    )
    blob = seal_blob(v["plaintext"], VECTOR_FIELDS, public, SigningKey(v["writer_ed25519_seed"]))
    body_length = len(zlib.compress(v["plaintext"], COMPRESS_LEVEL)) + 16
    expected = v["header"][:25] + struct.pack(">Q", body_length) + v["header"][33:]
    assert blob[: len(v["header"])] == expected
