"""Conformance test for the storage seam: every implementation runs the same checks.

Later implementations (the encrypting wrapper) are added to STORAGE_FACTORIES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sealed_storage import SealedStorage
from shared.storage import MemoryStorage, SqliteStorage, Storage, StorageError

StorageFactory = Callable[[Path], Storage]

STORAGE_FACTORIES: dict[str, StorageFactory] = {
    "memory": lambda _path: MemoryStorage(),
    "sqlite": lambda path: SqliteStorage(path / "store.db"),
    "sealed-sqlite": lambda path: SealedStorage.ephemeral(SqliteStorage(path / "sealed.db")),
}


@pytest.fixture(params=sorted(STORAGE_FACTORIES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = STORAGE_FACTORIES[request.param](tmp_path)
    yield store
    close = getattr(store, "close", None)
    if close:
        close()


def test_load_missing_is_none(storage: Storage) -> None:
    assert storage.load(("a", "b")) is None


def test_save_then_load_round_trips(storage: Storage) -> None:
    storage.save(("15307", "registry", "0"), b"\x00\x01snapshot")
    assert storage.load(("15307", "registry", "0")) == b"\x00\x01snapshot"


def test_save_overwrites(storage: Storage) -> None:
    storage.save(("k",), b"one")
    storage.save(("k",), b"two")
    assert storage.load(("k",)) == b"two"


def test_load_range_matches_whole_parts_only(storage: Storage) -> None:
    storage.save(("town", "a", "1"), b"1")
    storage.save(("town", "a", "2"), b"2")
    storage.save(("town", "ab", "3"), b"3")
    storage.save(("other", "a", "1"), b"4")
    assert storage.load_range(("town", "a")) == [
        (("town", "a", "1"), b"1"),
        (("town", "a", "2"), b"2"),
    ]
    assert [k for k, _ in storage.load_range(("town",))] == [
        ("town", "a", "1"),
        ("town", "a", "2"),
        ("town", "ab", "3"),
    ]
    assert len(storage.load_range(())) == 4


def test_load_range_includes_exact_key(storage: Storage) -> None:
    storage.save(("x", "y"), b"v")
    assert storage.load_range(("x", "y")) == [(("x", "y"), b"v")]


def test_remove(storage: Storage) -> None:
    storage.save(("k", "1"), b"v")
    storage.remove(("k", "1"))
    storage.remove(("k", "never-there"))
    assert storage.load(("k", "1")) is None
    assert storage.load_range(("k",)) == []


def test_save_many_is_all_or_nothing(storage: Storage) -> None:
    storage.save(("keep",), b"old")
    with pytest.raises(StorageError):
        storage.save_many([(("keep",), b"new"), (("bad", ""), b"x")])
    assert storage.load(("keep",)) == b"old"
    storage.save_many([(("keep",), b"new"), (("more", "1"), b"m")])
    assert storage.load(("keep",)) == b"new"
    assert storage.load(("more", "1")) == b"m"


@pytest.mark.parametrize("key", [(), ("",), ("a", ""), ("a\x1fb",)])
def test_invalid_keys_are_refused(storage: Storage, key: tuple[str, ...]) -> None:
    with pytest.raises(StorageError):
        storage.save(key, b"v")


def test_data_is_copied_not_aliased(storage: Storage) -> None:
    buf = bytearray(b"abc")
    storage.save(("k",), bytes(buf))
    buf[0] = 0
    assert storage.load(("k",)) == b"abc"


def test_sqlite_storage_survives_reopen(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "s.db")
    store.save(("a", "b"), "辻\U000e0102".encode())
    store.close()
    reopened = SqliteStorage(tmp_path / "s.db")
    assert reopened.load(("a", "b")) == "辻\U000e0102".encode()
    reopened.close()


key_parts = st.text(
    alphabet=st.characters(blacklist_characters="\x1f", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.dictionaries(
        st.tuples(key_parts, key_parts), st.binary(max_size=64), max_size=12
    ),
    prefix=key_parts,
)
def test_memory_and_sqlite_agree(
    tmp_path_factory: pytest.TempPathFactory,
    entries: dict[tuple[str, str], bytes],
    prefix: str,
) -> None:
    memory = MemoryStorage()
    sqlite = SqliteStorage(tmp_path_factory.mktemp("agree") / "s.db")
    for key, value in entries.items():
        memory.save(key, value)
        sqlite.save(key, value)
    first = next(iter(entries), (prefix,))[0]
    for p in [(), (prefix,), (first,)]:
        assert memory.load_range(p) == sqlite.load_range(p)
    sqlite.close()
