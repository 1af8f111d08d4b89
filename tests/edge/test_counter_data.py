"""The counter's view of a town (`edge.counter.town_data`): residents and households are
read when the counter is built, a person's tax, insurance and vehicle records only with
the one shard that holds that person, when a request needs them. What a request sees
must be exactly what the whole-town view (`TownData.from_export`) gives."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from edge.counter import town_data
from edge.documents import choices
from shared.export_csv import read_town
from shared.issuance import TownData
from shared.issuance.data import LookupMap, ShardedMap
from shared.model import TownExport
from shared.records import record_id, to_record
from shared.registry import TownRegistry, Upsert

TODAY = date(2026, 11, 27)
TABLES = {
    "residents": "residents", "households": "households",
    "support_blocks": "support_blocks", "tax_assessments": "tax_assessments",
    "installments": "installments", "vehicles": "vehicles", "nhi_members": "nhi_members",
}  # fmt: skip


@pytest.fixture(scope="module")
def town(small_export_dir: Path) -> TownExport:
    return read_town(small_export_dir / "15307")


def _registry(town: TownExport) -> TownRegistry:
    registry = TownRegistry(town.town.code, shards=16)
    changes = []
    for table, attribute in TABLES.items():
        for obj in getattr(town, attribute):
            record = to_record(obj)
            changes.append(Upsert(table, record_id(table, obj), record, record))
    registry.apply(changes)
    return registry


def _loaded(data: TownData) -> dict[str, set[int]]:
    maps = {"installments": data.installments, "nhi": data.nhi, "vehicles": data.vehicles}
    return {name: set(m._loaded) for name, m in maps.items() if isinstance(m, ShardedMap)}


def test_a_request_reads_only_the_shard_of_its_person(town: TownExport) -> None:
    registry = _registry(town)
    data = town_data(registry, town.town)
    assert _loaded(data) == {"installments": set(), "nhi": set(), "vehicles": set()}
    owner = town.vehicles[0].owner_id
    choices(data, owner, TODAY)
    shard = registry.person_shard(owner)
    assert _loaded(data) == {"installments": {shard}, "nhi": {shard}, "vehicles": {shard}}
    # a 課税 record is read by its id: only the owner's, never the whole table
    assessments = data.assessments
    assert isinstance(assessments, LookupMap)
    assert assessments._all is None
    assert {rid for rid, _ in assessments._cache} <= {owner}


def test_what_a_request_sees_is_the_whole_town_view(town: TownExport) -> None:
    data = town_data(_registry(town), town.town)
    whole = TownData.from_export(town)
    for person in town.residents:
        assert choices(data, person.id, TODAY) == choices(whole, person.id, TODAY), person.id
        for fy in {fy for (_, fy) in whole.assessments}:
            assert data.assessments.get((person.id, fy)) == whole.assessments.get((person.id, fy))
        assert tuple(data.installments_of(person.id)) == tuple(whole.installments_of(person.id))
        assert data.nhi.get(person.id) == whole.nhi.get(person.id)
    for vehicle in town.vehicles:
        assert data.vehicles[vehicle.id] == whole.vehicles[vehicle.id]
        assert sorted(i.id for i in data.vehicle_installments(vehicle.id)) == sorted(
            i.id for i in whole.vehicle_installments(vehicle.id)
        )
    assert dict(data.assessments) == dict(whole.assessments)
    assert len(data.installments) == len(whole.installments)
    assert data.vehicles.get("no-such-vehicle") is None
