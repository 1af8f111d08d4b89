"""Rebuilding the hub from three boxes' replicas restores every town's registry."""

from __future__ import annotations

from pathlib import Path

import httpx
from servers import serve

from cloud.app import create_app
from cloud.custody import Custody
from cloud.importer import import_export
from cloud.rebuild import rebuild_from_replicas
from cloud.store import TownStore
from edge.replica import BoxReplica
from shared.storage import MemoryStorage, SqliteStorage

TOWNS = ("15307", "15405", "15581")


def test_rebuilding_the_hub_from_three_boxes_restores_every_town(
    tmp_path: Path, small_export_dir: Path
) -> None:
    hub_data = tmp_path / "hub"
    hub_data.mkdir()
    storage = SqliteStorage(hub_data / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    expected = {
        town: {
            table: dict(TownStore(storage, town).load_registry(16).records(table))
            for table in ("households", "residents", "support_blocks", "tax_assessments")
        }
        for town in TOWNS
    }
    storage.close()
    boxes = []
    with serve(create_app(hub_data)) as url, httpx.Client(base_url=url) as client:
        for town in TOWNS:
            box = BoxReplica(MemoryStorage())
            box.pull(client, box_town=town)
            boxes.append(box.storage)
    # The cloud centre's data folder is lost; the custody file comes back from its backup.
    (hub_data / "hub.db").unlink()
    new_hub = MemoryStorage()
    restored = rebuild_from_replicas(boxes, custody, new_hub)
    assert set(restored) == set(TOWNS)
    for town in TOWNS:
        registry = TownStore(new_hub, town).load_registry(16)
        for table, records in expected[town].items():
            assert dict(registry.records(table)) == records, (town, table)
        assert new_hub.load_range((town, "sealed")), town  # boxes can pull from it again
