"""Sealed replicas: the hub publishes sealed blobs and wrapped credentials; a box stores
them, can read none of it at rest, and opens its town only with a clerk's password."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from plaintext_scan import scan
from servers import serve

from cloud.app import create_app
from cloud.custody import Custody, rotate_town
from cloud.importer import import_export
from cloud.store import TownStore
from edge.replica import BoxReplica, ReplicaError, UnlockError
from shared import crypto
from shared.blobs import BlobDecryptError
from shared.export_csv import read_town
from shared.model import Clerk, TownExport
from shared.storage import SqliteStorage

PASSWORD = "correct horse battery staple 連携"
FAST = crypto.INTERACTIVE  # tests only; the default is asserted in test_crypto


def _clerks(export: TownExport) -> tuple[Clerk, Clerk]:
    roster = next(c for c in export.clerks if c.on_roster)
    other = next(c for c in export.clerks if not c.on_roster)
    return roster, other


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("hub")
    storage = SqliteStorage(data / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    for folder in sorted(small_export_dir.iterdir()):
        for clerk in _clerks(read_town(folder)):
            custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=FAST)
    storage.close()
    yield data


@pytest.fixture()
def box(tmp_path: Path, hub: Path) -> Iterator[tuple[BoxReplica, Path]]:
    storage = SqliteStorage(tmp_path / "box" / "replica.db")
    replica = BoxReplica(storage)
    with serve(create_app(hub)) as url, httpx.Client(base_url=url) as client:
        replica.pull(client, box_town="15307")
    yield replica, tmp_path / "box"
    storage.close()


def test_clerk_password_opens_own_town_with_the_hubs_data(
    box: tuple[BoxReplica, Path], hub: Path, small_export_dir: Path
) -> None:
    replica, _ = box
    roster, other = _clerks(read_town(small_export_dir / "15307"))
    for clerk in (roster, other):
        unlocked = replica.unlock("15307", clerk.login_id, PASSWORD)
        assert set(unlocked.certificate.roles) == set(clerk.roles)
    registry = replica.open_registry("15307", unlocked.keyring, shards=16)
    hub_storage = SqliteStorage(hub / "hub.db")
    expected = TownStore(hub_storage, "15307").load_registry(shards=16)
    assert dict(registry.records("residents")) == dict(expected.records("residents"))
    hub_storage.close()


def test_wrong_password_or_unknown_clerk_opens_nothing(
    box: tuple[BoxReplica, Path], small_export_dir: Path
) -> None:
    replica, _ = box
    roster, _ = _clerks(read_town(small_export_dir / "15307"))
    with pytest.raises(UnlockError):
        replica.unlock("15307", roster.login_id, PASSWORD + "x")
    with pytest.raises(UnlockError):
        replica.unlock("15307", "nobody", PASSWORD)


def test_partner_box_holds_roster_credentials_only(
    box: tuple[BoxReplica, Path], small_export_dir: Path
) -> None:
    replica, _ = box
    roster, other = _clerks(read_town(small_export_dir / "15405"))
    assert replica.storage.load(("15405", "credential", roster.login_id)) is not None
    assert replica.storage.load(("15405", "credential", other.login_id)) is None


def test_a_clerks_keys_open_only_their_own_town(
    box: tuple[BoxReplica, Path], small_export_dir: Path
) -> None:
    replica, _ = box
    seiro, _ = _clerks(read_town(small_export_dir / "15307"))
    izumozaki, _ = _clerks(read_town(small_export_dir / "15405"))
    own = replica.unlock("15307", seiro.login_id, PASSWORD)
    with pytest.raises(UnlockError):
        replica.unlock("15405", seiro.login_id, PASSWORD)
    partner = replica.unlock("15405", izumozaki.login_id, PASSWORD)
    assert own.keyring.town == "15307" and partner.keyring.town == "15405"
    with pytest.raises(Exception, match="town"):
        replica.open_registry("15405", own.keyring, shards=16)


def test_nothing_personal_is_readable_on_the_box(
    box: tuple[BoxReplica, Path], small_exports: list[TownExport]
) -> None:
    _, folder = box
    residents = [r for e in small_exports for r in e.residents]
    assert scan(folder, residents) == []


def test_the_scan_fails_when_one_plaintext_field_is_stored(
    box: tuple[BoxReplica, Path], small_exports: list[TownExport]
) -> None:
    """The deliberately broken build: one resident's kana kept beside the blobs (and
    once more compressed) — the scan must see both."""
    replica, folder = box
    person = small_exports[0].residents[0]
    residents = [r for e in small_exports for r in e.residents]
    replica.storage.save(("15307", "debug"), json.dumps({"kana": person.kana}).encode())
    assert scan(folder, residents)
    replica.storage.remove(("15307", "debug"))
    replica.storage.save(("15307", "debug"), zlib.compress(person.my_number.encode()))
    assert scan(folder, residents)


def test_a_blob_not_signed_by_the_pinned_hub_is_refused(
    tmp_path: Path, hub: Path
) -> None:
    storage = SqliteStorage(tmp_path / "replica.db")
    replica = BoxReplica(storage)
    storage.save(("federation", "hub-writer"), b"00" * 32)  # pinned to another key
    with (
        serve(create_app(hub)) as url,
        httpx.Client(base_url=url) as client,
        pytest.raises(ReplicaError),
    ):
        replica.pull(client, box_town="15307")
    assert storage.load_range(("15307", "blob")) == []
    storage.close()


def test_option_keeps_my_number_out_of_partner_replicas(
    tmp_path: Path, small_export_dir: Path, small_exports: list[TownExport]
) -> None:
    """With 15405's option on, the 15307 box holds 15405's residents without 個人番号
    (even once opened with the town's keys), while 15405's own box holds them in full."""
    hub_data = tmp_path / "hub"
    hub_data.mkdir()
    storage = SqliteStorage(hub_data / "hub.db")
    custody = Custody.create()
    report = import_export(
        small_export_dir, storage, custody=custody, partner_without_my_number={"15405"}
    )
    assert report.ok
    roster, _ = _clerks(read_town(small_export_dir / "15405"))
    custody.provision_clerk(storage, roster, PASSWORD, kdf_limits=FAST)
    storage.close()
    boxes = {}
    with serve(create_app(hub_data)) as url, httpx.Client(base_url=url) as client:
        for code in ("15307", "15405"):
            boxes[code] = BoxReplica(SqliteStorage(tmp_path / code / "replica.db"))
            boxes[code].pull(client, box_town=code)
    numbers = {}
    for code, replica in boxes.items():
        unlocked = replica.unlock("15405", roster.login_id, PASSWORD)
        registry = replica.open_registry("15405", unlocked.keyring, shards=16)
        numbers[code] = {r.id: r.my_number for r in registry.objects("residents")}
        replica.storage.close()  # type: ignore[attr-defined]
    izumozaki = next(e for e in small_exports if e.town.code == "15405")
    assert numbers["15405"] == {r.id: r.my_number for r in izumozaki.residents}
    assert set(numbers["15307"].values()) == {""}
    # Nothing of the numbers anywhere in the partner box's files either.
    hits = scan(tmp_path / "15307", [r for r in izumozaki.residents])
    assert hits == []


def test_after_rotation_a_revoked_clerks_old_keys_open_nothing_new(
    tmp_path: Path, small_export_dir: Path
) -> None:
    hub_data = tmp_path / "hub"
    hub_data.mkdir()
    storage = SqliteStorage(hub_data / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    kept, revoked = _clerks(read_town(small_export_dir / "15307"))
    for clerk in (kept, revoked):
        custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=FAST)
    stolen = storage.load(("15307", "credential", revoked.login_id))  # kept by the clerk
    assert stolen is not None
    new = rotate_town(custody, storage, "15307", revoked=frozenset({revoked.login_id}))
    registry = TownStore(storage, "15307").load_registry(shards=16)
    custody.publish_documents(storage, registry)
    storage.close()
    box = BoxReplica(SqliteStorage(tmp_path / "box" / "replica.db"))
    with serve(create_app(hub_data)) as url, httpx.Client(base_url=url) as client:
        box.pull(client, box_town="15307")
    # The clerk who stayed opens the new epoch's data without having changed password.
    unlocked = box.unlock("15307", kept.login_id, PASSWORD)
    assert unlocked.keyring.current.epoch == new.epoch == 2
    assert list(box.open_registry("15307", unlocked.keyring, shards=16).records("residents"))
    # The revoked clerk is gone from the box, and their old record opens only epoch 1.
    with pytest.raises(UnlockError):
        box.unlock("15307", revoked.login_id, PASSWORD)
    record = json.loads(stolen)
    keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
    old_ring = crypto.KeyRing(
        "15307",
        [crypto.open_town_keys(bytes.fromhex(v), keys) for v in record["town_keys"].values()],
    )
    assert old_ring.epochs == (1,)
    with pytest.raises(BlobDecryptError):
        box.open_registry("15307", old_ring, shards=16)
    box.storage.close()  # type: ignore[attr-defined]
