"""Rebuilding the hub from three boxes' replicas restores every town's documents."""

from __future__ import annotations

from pathlib import Path

from federation import PASSWORD, enrol_box, fetch, make_hub
from servers import serve

from cloud.app import create_app
from cloud.custody import Custody
from cloud.rebuild import rebuild_from_replicas
from cloud.replica import HubReplica
from shared.storage import MemoryStorage, SqliteStorage
from shared.sync.log import BlobLog

TOWNS = ("15307", "15405", "15581")
TABLES = ("households", "residents", "support_blocks", "tax_assessments")


def test_rebuilding_the_hub_from_three_boxes_restores_every_town(
    tmp_path: Path, small_export_dir: Path
) -> None:
    hub_data = tmp_path / "hub"
    custody = make_hub(hub_data, small_export_dir)
    storage = SqliteStorage(hub_data / "hub.db")
    lost = HubReplica(storage, custody)
    expected = {
        town: {table: dict(lost.registry(town).records(table)) for table in TABLES}
        for town in TOWNS
    }
    storage.close()
    boxes = []
    with serve(create_app(hub_data, custody)) as url:
        for town in TOWNS:
            box = MemoryStorage()
            enrol_box(hub_data, box, town)
            fetch(box, url, town)
            boxes.append(box)
    # The cloud centre's data folder is lost; the custody file comes back from its backup.
    (hub_data / "hub.db").unlink()
    restored_custody = Custody.load(hub_data, PASSWORD)
    new_hub = MemoryStorage()
    restored = rebuild_from_replicas(boxes, restored_custody, new_hub)
    assert set(restored) == set(TOWNS)
    hub = HubReplica(new_hub, restored_custody)
    for town in TOWNS:
        registry = hub.registry(town)
        for table, records in expected[town].items():
            assert dict(registry.records(table)) == records, (town, table)
        # Boxes sync with it again as before: the same log, the as-of statement kept.
        assert BlobLog(new_hub).have([town]) == BlobLog(boxes[0]).have([town])
        assert hub.log.notices.get(town, "as-of") is not None
        assert new_hub.load((town, "public")) is not None
