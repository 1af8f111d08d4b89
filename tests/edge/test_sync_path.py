"""One path: what a box's counter shows is what arrived through the sync log.

Two boxes (their sync agents and town workers, in-process, each over its own SQLite
store as in production) and a hub with its keys: an edit made on box A reaches the hub,
which applies it, and box B's counter — already open — shows it after its next sync. Two
boxes editing the same field without seeing each other converge on one value, and the
hub lists the pair for review. A new 支援措置 block refuses a third-party request at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from federation import PASSWORD, enrol_box, fetch, make_hub, roster_and_other
from servers import serve

from cloud.app import create_app
from cloud.custody import Custody
from cloud.operators import add_operator
from cloud.replica import HubReplica
from edge.sync_agent import SyncAgent
from edge.worker import TownWorker
from shared.registry import Upsert
from shared.storage import SqliteStorage

OPERATOR_PASSWORD = "hub operator's long passphrase 7"

TOWN = "15307"


@dataclass
class Box:
    agent: SyncAgent
    worker: TownWorker
    capability: str

    def ask(self, **request: Any) -> dict[str, Any]:
        return self.worker.handle({**request, "capability": self.capability})

    def edit(self, record_id: str, **fields: object) -> None:
        """A clerk's edit in the town's worker: its own writer's blobs in the box's log."""
        assert self.worker.reader is not None
        registry = self.worker.reader.sync.registries[TOWN]
        old = registry.get("residents", record_id)
        assert old is not None
        shard = registry.document_name("residents", record_id, {"household_id": old.household_id})
        record = registry.documents[shard].get("residents", record_id)
        assert record is not None
        change = Upsert("residents", record_id, dict(fields), {**record, **fields}, record)
        self.worker.reader.sync.edit(TOWN, [change])


@dataclass
class World:
    url: str
    hub_data: Path
    custody: Custody
    a: Box
    b: Box
    resident: str


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> tuple[Path, Custody]:
    hub_data = tmp_path_factory.mktemp("imported") / "hub"
    return hub_data, make_hub(hub_data, small_export_dir, clerks=[TOWN])


@pytest.fixture
def world(
    tmp_path: Path, small_export_dir: Path, imported: tuple[Path, Custody]
) -> Iterator[World]:
    hub_data = tmp_path / "hub"
    shutil.copytree(imported[0], hub_data)  # a fresh hub for each test, imported once
    custody = imported[1]
    clerk, _ = roster_and_other(small_export_dir / TOWN)
    with serve(create_app(hub_data, custody)) as url:
        boxes = []
        for name in ("a", "b"):
            data = tmp_path / name
            storage = SqliteStorage(data / "replica.db")
            enrol_box(hub_data, storage, TOWN, f"box-{name}")
            agent = fetch(storage, url, TOWN)
            worker = TownWorker(data, TOWN, shards=16)
            answer = worker.handle({"op": "unlock", "login_id": clerk.login_id,
                                    "password": PASSWORD})  # fmt: skip
            assert answer["ok"], answer
            boxes.append(Box(agent, worker, answer["capability"]))
        resident = next(
            rid for rid, r in boxes[0].worker.reader.sync.registries[TOWN].records("residents")  # type: ignore[union-attr]
            if not r.get("removal.reason")
        )
        yield World(url, hub_data, custody, boxes[0], boxes[1], resident)
        for box in boxes:
            box.agent.storage.close()  # type: ignore[attr-defined]
            box.worker.storage.close()


def _names(box: Box, resident: str) -> dict[str, str]:
    answer = box.ask(op="household", resident_id=resident)
    assert answer["ok"], answer
    return {m["id"]: m["name"] for m in answer["household"]["members"]}


def test_an_edit_on_box_a_is_what_box_bs_counter_shows_after_sync(world: World) -> None:
    a, b, rid = world.a, world.b, world.resident
    assert _names(b, rid)[rid] == _names(a, rid)[rid]  # both counters open, same data
    a.edit(rid, name="連携　花子", kana="レンケイ　ハナコ")
    a.agent.sync_peer(world.url)
    b.agent.sync_peer(world.url)
    assert _names(b, rid)[rid] == "連携　花子"
    found = b.ask(op="search", query="レンケイ　ハナコ")
    assert rid in [row["resident_id"] for row in found["rows"]]
    # The hub applied it too (its own registry is the same log, opened with its keys),
    # and nothing was concurrent.
    storage = SqliteStorage(world.hub_data / "hub.db")
    hub = HubReplica(storage, world.custody)
    assert hub.registry(TOWN).get("residents", rid).name == "連携　花子"
    storage.close()
    client = _operator(world)
    assert client.get("/api/review").json()["items"] == []
    client.close()


def _operator(world: World) -> httpx.Client:
    """A client logged in as a hub operator: the review list shows residents' values."""
    add_operator(world.hub_data, "ops.sato", OPERATOR_PASSWORD)
    client = httpx.Client(base_url=world.url, timeout=60)
    page = client.get("/operator/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": token, "login": "ops.sato", "password": OPERATOR_PASSWORD}
    assert client.post("/operator/login", data=form).status_code == 303
    return client


def test_concurrent_edits_of_one_field_converge_and_are_listed_at_the_hub(world: World) -> None:
    a, b, rid = world.a, world.b, world.resident
    a.edit(rid, name="甲野　一郎")
    b.edit(rid, name="乙野　二郎")  # neither has seen the other's
    for box in (a, b, a):
        box.agent.sync_peer(world.url)
    kept = _names(a, rid)[rid]
    assert kept == _names(b, rid)[rid] and kept in ("甲野　一郎", "乙野　二郎")
    # without an operator's login the list (residents' values) is not shown
    assert httpx.get(world.url + "/api/review").status_code == 401
    assert httpx.post(f"{world.url}/api/review/{TOWN}/x", json={}).status_code == 401
    # at rest the values are sealed to the town: not in the hub's database file
    hub_files = b"".join(p.read_bytes() for p in world.hub_data.glob("hub.db*"))
    assert "乙野　二郎".encode() not in hub_files and "甲野　一郎".encode() not in hub_files
    client = _operator(world)
    review = client.get("/api/review", params={"status": "open"}).json()
    (item,) = review["items"]
    assert (item["town"], item["table"], item["record"], item["field"]) == (
        TOWN, "residents", rid, "name",
    )  # fmt: skip
    assert {v["value"] for v in item["values"]} == {"甲野　一郎", "乙野　二郎"}
    assert item["kept"] == kept and item["kind"] == "concurrent"
    page = client.get("/operator/conflicts").text
    assert "同時編集" in page and kept in page
    done = client.post(f"/api/review/{TOWN}/{item['id']}", json={"note": "確認"})
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    assert done.json()["resolved_by"] == "ops.sato"
    assert client.get("/api/review", params={"status": "open"}).json()["items"] == []
    assert "確認が必要な同時編集はありません" in client.get("/operator/conflicts").text
    client.close()


def test_replica_health_lists_both_boxes_current_as_of_the_export(world: World) -> None:
    for box in (world.a, world.b):
        box.agent.sync_peer(world.url)
    view = httpx.get(world.url + "/api/replicas").json()
    labels = {r["label"]: r for r in view["replicas"]}
    assert set(labels) == {"box-a", "box-b"}
    for replica in labels.values():
        held = replica["towns"][TOWN]
        assert held["missing_blobs"] == 0 and held["current"]
        assert held["as_of"] == view["towns"][TOWN]["as_of"] != ""
        assert replica["seconds_since_contact"] < 60
    world.a.edit(world.resident, name="遅延　確認")
    world.a.agent.sync_peer(world.url)  # B has not synced since: one blob behind
    behind = {r["label"]: r for r in httpx.get(world.url + "/api/replicas").json()["replicas"]}
    assert behind["box-b"]["towns"][TOWN]["missing_blobs"] == 1
    page = httpx.get(world.url + "/replicas")
    assert page.status_code == 200 and "box-b" in page.text and "未受信" in page.text


def test_two_logins_at_once_open_the_town_once(
    tmp_path: Path, small_export_dir: Path, imported: tuple[Path, Custody],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests run in threads: two clerks logging in to a sealed town at the same moment
    share one opening (without the worker's lock both replay the log)."""
    import threading

    from edge.replica import TownReader

    opened: list[int] = []
    real_open = TownReader.open

    def counting_open(self: TownReader, keyring: Any) -> Any:
        opened.append(1)
        return real_open(self, keyring)

    monkeypatch.setattr(TownReader, "open", counting_open)
    hub_data = tmp_path / "hub"
    shutil.copytree(imported[0], hub_data)
    clerk, _ = roster_and_other(small_export_dir / TOWN)
    with serve(create_app(hub_data, imported[1])) as url:
        storage = SqliteStorage(tmp_path / "box" / "replica.db")
        enrol_box(hub_data, storage, TOWN, "box-a")
        fetch(storage, url, TOWN)
        worker = TownWorker(tmp_path / "box", TOWN, shards=16)
        answers: list[dict[str, Any]] = []
        login = {"op": "unlock", "login_id": clerk.login_id, "password": PASSWORD}
        threads = [threading.Thread(target=lambda: answers.append(worker.handle(login)))
                   for _ in range(2)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert [a["ok"] for a in answers] == [True, True], answers
        assert len(opened) == 1
        storage.close()
        worker.storage.close()
