"""The encrypting storage wrapper (shared/sealed_storage.py). The storage conformance test
(test_storage.py) also runs over it; these are the checks particular to sealing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from shared.blobs import (
    BlobDecryptError,
    BlobError,
    UnknownWriter,
    open_blob,
    read_header,
)
from shared.crypto import KeyRing, TownKeys, TownPublic, rotate
from shared.sealed_storage import MisplacedBlob, Sealed, SealedStorage, document_name
from shared.storage import MemoryStorage, SqliteStorage, StorageKey

TOWN = TownKeys.generate("15307")
WRITER = SigningKey.generate()
WRITER_ID = "box-15307-a"


def lookup(writer_id: str) -> VerifyKey | None:
    return WRITER.verify_key if writer_id == WRITER_ID else None


def sealed_store(
    inner: MemoryStorage | SqliteStorage | None = None,
    *,
    keyring: KeyRing | None = None,
    public: TownPublic | None = None,
    open_: bool = True,
) -> SealedStorage:
    if keyring is None and open_:
        keyring = KeyRing("15307", [TOWN])
    return SealedStorage(
        inner if inner is not None else MemoryStorage(),
        public or TOWN.public,
        WRITER,
        WRITER_ID,
        keyring,
        lookup,
    )


key_parts = st.text(
    alphabet=st.characters(blacklist_characters="\x1f", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    entries=st.dictionaries(
        st.lists(key_parts, min_size=1, max_size=3).map(tuple), st.binary(max_size=512)
    )
)
def test_round_trip_and_inner_store_holds_only_blobs(entries: dict[StorageKey, bytes]) -> None:
    inner = MemoryStorage()
    store = sealed_store(inner)
    store.save_many(entries.items())
    for key, value in entries.items():
        assert store.load(key) == value
        blob = inner.load(key)
        assert blob is not None and blob.startswith(b"RKBL")
        assert read_header(blob).document == document_name(key)
    assert store.load_range(()) == sorted(entries.items())


def test_a_writer_without_the_keyring_can_save_but_not_load(tmp_path: Path) -> None:
    inner = SqliteStorage(tmp_path / "box.db")
    # The writer is given only the town's public key, as bytes: no private key exists in it.
    writer = sealed_store(inner, public=TownPublic.from_bytes(TOWN.public.to_bytes()), open_=False)
    assert writer.sealed
    writer.save(("15307", "audit", "login-failed-1"), "sato: パスワード誤り".encode())
    writer.save_many([(("15307", "audit", "login-failed-2"), b"ito")])
    with pytest.raises(Sealed) as caught:
        writer.load(("15307", "audit", "login-failed-1"))
    assert "ログイン" in str(caught.value) and "15307" in caught.value.detail
    with pytest.raises(Sealed):
        writer.load_range(("15307",))

    reader = sealed_store(inner)  # a clerk of the town has logged in
    assert reader.load(("15307", "audit", "login-failed-1")) == "sato: パスワード誤り".encode()
    assert [k[-1] for k, _ in reader.load_range(("15307", "audit"))] == [
        "login-failed-1",
        "login-failed-2",
    ]
    inner.close()


def test_unlock_and_lock() -> None:
    store = sealed_store(open_=False)
    store.save(("k",), b"v")
    store.unlock(KeyRing("15307", [TOWN]))
    assert store.load(("k",)) == b"v"
    store.lock()
    with pytest.raises(Sealed):
        store.load(("k",))
    with pytest.raises(ValueError):
        store.unlock(KeyRing("15405", [TownKeys.generate("15405")]))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_tampered_value_raises_and_leaves_the_store_unchanged(data: st.DataObject) -> None:
    inner = MemoryStorage()
    store = sealed_store(inner)
    store.save(("15307", "registry", "a"), b"household 1" * 20)
    store.save(("15307", "registry", "b"), b"household 2")
    blob = inner.load(("15307", "registry", "a"))
    assert blob is not None
    position = data.draw(st.integers(0, len(blob) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = blob[:position] + bytes([blob[position] ^ mask]) + blob[position + 1 :]
    inner.save(("15307", "registry", "a"), tampered)
    before = inner.load_range(())

    with pytest.raises(BlobError):
        store.load(("15307", "registry", "a"))
    with pytest.raises(BlobError):
        store.load_range(("15307", "registry"))
    assert inner.load_range(()) == before  # nothing removed, nothing rewritten
    assert store.load(("15307", "registry", "b")) == b"household 2"


def test_a_truncated_value_raises_and_leaves_the_store_unchanged() -> None:
    inner = MemoryStorage()
    store = sealed_store(inner)
    store.save(("k",), b"value")
    blob = inner.load(("k",))
    assert blob is not None
    inner.save(("k",), blob[:-1])
    with pytest.raises(BlobError):
        store.load(("k",))
    assert inner.load(("k",)) == blob[:-1]


def test_a_blob_moved_to_another_key_is_refused() -> None:
    inner = MemoryStorage()
    store = sealed_store(inner)
    store.save(("15307", "registry", "shard-01"), b"one")
    store.save(("15307", "registry", "shard-02"), b"two")
    moved = inner.load(("15307", "registry", "shard-01"))
    assert moved is not None
    inner.save(("15307", "registry", "shard-02"), moved)
    with pytest.raises(MisplacedBlob):
        store.load(("15307", "registry", "shard-02"))
    assert issubclass(MisplacedBlob, BlobError)
    assert store.load(("15307", "registry", "shard-01")) == b"one"


def test_a_blob_from_another_towns_store_is_refused() -> None:
    other_town = TownKeys.generate("15405")
    other_writer = SigningKey.generate()
    other = SealedStorage(
        MemoryStorage(),
        other_town.public,
        other_writer,
        WRITER_ID,
        KeyRing("15405", [other_town]),
        {WRITER_ID: other_writer.verify_key}.get,
    )
    other.save(("registry", "0"), b"15405 data")
    inner = MemoryStorage()
    store = sealed_store(inner)
    blob = other._inner.load(("registry", "0"))
    assert blob is not None
    inner.save(("registry", "0"), blob)
    with pytest.raises(BlobError):  # wrong signer for this town's writer id
        store.load(("registry", "0"))
    trusting = SealedStorage(
        inner,
        TOWN.public,
        WRITER,
        WRITER_ID,
        KeyRing("15307", [TOWN]),
        {WRITER_ID: other_writer.verify_key}.get,
    )
    with pytest.raises(BlobDecryptError):  # even when the signature checks out
        trusting.load(("registry", "0"))


def test_an_unknown_writer_is_refused() -> None:
    inner = MemoryStorage()
    sealed_store(inner).save(("k",), b"v")
    stranger_reader = SealedStorage(
        inner, TOWN.public, WRITER, WRITER_ID, KeyRing("15307", [TOWN]), lambda _w: None
    )
    with pytest.raises(UnknownWriter):
        stranger_reader.load(("k",))


def test_values_written_before_a_rotation_still_open() -> None:
    inner = MemoryStorage()
    sealed_store(inner).save(("old",), b"epoch 1")
    new = rotate(TOWN)
    store = sealed_store(inner, keyring=KeyRing("15307", [TOWN, new]), public=new.public)
    store.save(("new",), b"epoch 2")
    assert store.load(("old",)) == b"epoch 1" and store.load(("new",)) == b"epoch 2"
    new_blob = inner.load(("new",))
    assert new_blob is not None and read_header(new_blob).epoch == 2
    with pytest.raises(BlobDecryptError):
        open_blob(new_blob, KeyRing("15307", [TOWN]), lookup)


def test_writer_sequence_numbers_rise() -> None:
    inner = MemoryStorage()
    store = sealed_store(inner)
    for i in range(5):
        store.save(("k", str(i)), b"v")
    seqs = [read_header(blob).writer_seq for _, blob in inner.load_range(("k",))]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    explicit = SealedStorage(
        inner, TOWN.public, WRITER, WRITER_ID, None, lookup, first_sequence=100
    )
    explicit.save(("x",), b"1")
    explicit.save(("y",), b"2")
    assert [read_header(inner.load(k) or b"").writer_seq for k in [("x",), ("y",)]] == [100, 101]


def test_repr_names_the_town_and_state_only() -> None:
    store = sealed_store()
    text = repr(store)
    assert "15307" in text and "open" in text
    assert bytes(TOWN.sealing_key).hex() not in text
    assert bytes(WRITER).hex() not in text
