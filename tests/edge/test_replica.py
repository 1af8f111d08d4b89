"""Sealed replicas: the hub's sync log reaches a box sealed, with the clerks' wrapped
credentials; the box can read none of it at rest and opens its town — from the log —
only with a clerk's password."""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from federation import PASSWORD, enrol_box, fetch, make_hub, roster_and_other
from plaintext_scan import scan
from servers import serve

from cloud.app import create_app
from cloud.custody import Custody, rotate_town
from cloud.replica import HubReplica
from edge.replica import BoxReplica, ReplicaError, TownReader, UnlockError
from edge.sync_agent import AgentConfig, SyncAgent, run_session
from shared import crypto
from shared.export_csv import read_town
from shared.model import Clerk, TownExport
from shared.registry import TownRegistry, Upsert
from shared.storage import SqliteStorage
from shared.sync.errors import SyncError


def _clerks(export: TownExport) -> tuple[Clerk, Clerk]:
    roster = next(c for c in export.clerks if c.on_roster)
    other = next(c for c in export.clerks if not c.on_roster)
    return roster, other


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("hub")
    make_hub(data, small_export_dir)
    yield data


@functools.cache
def _custody(hub: Path) -> Custody:
    return Custody.load(hub, PASSWORD)


@pytest.fixture()
def box(tmp_path: Path, hub: Path) -> Iterator[tuple[BoxReplica, Path]]:
    storage = SqliteStorage(tmp_path / "box" / "replica.db")
    enrol_box(hub, storage, "15307")
    with serve(create_app(hub, _custody(hub))) as url:
        fetch(storage, url, "15307")
    yield BoxReplica(storage), tmp_path / "box"
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
    expected = HubReplica(hub_storage, _custody(hub)).registry("15307")
    assert dict(registry.records("residents")) == dict(expected.records("residents"))
    assert dict(registry.records("support_blocks")) == dict(expected.records("support_blocks"))
    hub_storage.close()
    # The as-of time shown is the hub's signed statement's, with nothing to warn about.
    export_time = read_town(small_export_dir / "15307").exported_at
    assert replica.as_of("15307") == export_time
    label, warning = replica.as_of_line("15307")
    assert label.startswith("令和") and warning == ""


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
    with pytest.raises(UnlockError, match="町村"):
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


def test_a_hub_with_another_key_than_the_pinned_one_is_refused(
    tmp_path: Path, hub: Path
) -> None:
    storage = SqliteStorage(tmp_path / "replica.db")
    replica = BoxReplica(storage)
    storage.save(("federation", "hub-writer"), b"00" * 32)  # pinned to another key
    with (
        serve(create_app(hub, _custody(hub))) as url,
        httpx.Client(base_url=url) as client,
        pytest.raises(ReplicaError),
    ):
        replica.pull(client, box_town="15307")
    assert storage.load_range(("15307", "credential")) == []
    storage.close()


def test_notices_not_signed_by_the_pinned_hub_are_ignored(tmp_path: Path, hub: Path) -> None:
    """The blobs still travel (they are self-certifying and sealed), but an as-of
    statement counts only from the pinned hub key: the box shows no as-of time."""
    storage = SqliteStorage(tmp_path / "replica.db")
    enrol_box(hub, storage, "15307")
    with serve(create_app(hub, _custody(hub))) as url:
        with httpx.Client(base_url=url) as client:
            BoxReplica(storage).pull(client, box_town="15307")
        storage.save(("federation", "hub-writer"), b"00" * 32)  # the pin, tampered
        agent = SyncAgent(storage, AgentConfig("15307", hub_url=url))
        agent.sync_peer(url)
    assert agent.replica.log.count("15307") > 0
    assert agent.replica.log.notices.ignored > 0
    assert BoxReplica(storage).as_of("15307") == ""
    storage.close()


def test_option_keeps_my_number_out_of_partner_replicas(
    tmp_path: Path, small_export_dir: Path, small_exports: list[TownExport]
) -> None:
    """With 15405's option on, the 15307 box holds 15405's partner copy — its residents
    without 個人番号, even once opened with the town's keys — while 15405's own box
    holds them in full; the hub gives the full copy to no other town's box."""
    hub_data = tmp_path / "hub"
    custody = make_hub(
        hub_data, small_export_dir, clerks=["15405"], partner_without_my_number=["15405"]
    )
    roster, _ = roster_and_other(small_export_dir / "15405")
    boxes = {}
    with serve(create_app(hub_data, custody)) as url:
        for code in ("15307", "15405"):
            storage = SqliteStorage(tmp_path / code / "replica.db")
            enrol_box(hub_data, storage, code)
            agent = fetch(storage, url, code)
            boxes[code] = BoxReplica(storage)
            if code == "15307":
                assert "15405" not in agent.replica.log.towns()
                with pytest.raises(SyncError, match=r"auth|request"):  # asked for outright
                    run_session_for(agent, url, "15405")
    numbers = {}
    for code, replica in boxes.items():
        unlocked = replica.unlock("15405", roster.login_id, PASSWORD)
        registry = replica.open_registry("15405", unlocked.keyring, shards=16)
        numbers[code] = {r.id: r.my_number for r in registry.objects("residents")}
        replica.storage.close()  # type: ignore[attr-defined]
    izumozaki = next(e for e in small_exports if e.town.code == "15405")
    assert numbers["15405"] == {r.id: r.my_number for r in izumozaki.residents}
    assert set(numbers["15307"]) == {r.id for r in izumozaki.residents}
    assert set(numbers["15307"].values()) == {""}
    # Nothing of the numbers anywhere in the partner box's files either.
    hits = scan(tmp_path / "15307", [r for r in izumozaki.residents])
    assert hits == []


def run_session_for(agent: SyncAgent, url: str, town: str) -> None:
    with httpx.Client(base_url=url) as client:
        run_session(client, agent.service, agent.identity, town, limits=agent.config.limits)


def test_after_rotation_a_revoked_clerks_old_keys_open_nothing_new(
    tmp_path: Path, small_export_dir: Path
) -> None:
    hub_data = tmp_path / "hub"
    custody = make_hub(hub_data, small_export_dir, clerks=["15307"])
    kept, revoked = roster_and_other(small_export_dir / "15307")
    storage = SqliteStorage(hub_data / "hub.db")
    stolen = storage.load(("15307", "credential", revoked.login_id))  # kept by the clerk
    assert stolen is not None
    new = rotate_town(custody, storage, "15307", revoked=frozenset({revoked.login_id}))
    # Rotation compacts: every document sealed afresh under the new epoch; then an edit.
    hub = HubReplica(storage, custody)
    compaction = hub.compact("15307")
    assert compaction.epoch == 2 and compaction.removed > 0
    registry = hub.registry("15307")
    after = Upsert("households", "after-rotation", {"district": "x"}, {"district": "x"})
    hub.publish("15307", registry.apply([after]))
    storage.close()
    box_storage = SqliteStorage(tmp_path / "box" / "replica.db")
    enrol_box(hub_data, box_storage, "15307")
    with serve(create_app(hub_data, custody)) as url:
        fetch(box_storage, url, "15307")
    box = BoxReplica(box_storage)
    # The clerk who stayed opens the new epoch's data without having changed password.
    unlocked = box.unlock("15307", kept.login_id, PASSWORD)
    assert unlocked.keyring.current.epoch == new.epoch == 2
    opened = box.open_registry("15307", unlocked.keyring, shards=16)
    assert list(opened.records("residents"))
    assert _raw(opened, "households", "after-rotation") == {"district": "x"}
    # The revoked clerk is gone from the box, and their old record opens only epoch 1:
    # nothing written since the rotation.
    with pytest.raises(UnlockError):
        box.unlock("15307", revoked.login_id, PASSWORD)
    record = json.loads(stolen)
    keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
    old_ring = crypto.KeyRing(
        "15307",
        [crypto.open_town_keys(bytes.fromhex(v), keys) for v in record["town_keys"].values()],
    )
    assert old_ring.epochs == (1,)
    reader = TownReader(box_storage, "15307", 16)
    old_view = reader.open(old_ring)
    assert _raw(old_view, "households", "after-rotation") is None
    assert not list(old_view.records("residents"))
    assert {f.kind for f in reader.sync.flags} == {"undecryptable"}
    box_storage.close()


def _raw(registry: TownRegistry, table: str, record_id: str) -> dict[str, object] | None:
    for document in registry.documents.values():
        record = document.get(table, record_id)
        if record is not None:
            return record
    return None
