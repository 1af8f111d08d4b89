"""Opening a town (`edge.town.OpenTown`): the cyclic garbage collector stays paused while
the records are read and indexed (`shared.gcpause`), and the search works after it."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from edge.town import OpenTown
from shared.export_csv import read_town
from shared.model import TownExport
from shared.records import record_id, to_record
from shared.registry import TownRegistry, Upsert


@pytest.fixture(scope="module")
def town(small_export_dir: Path) -> TownExport:
    return read_town(small_export_dir / "15307")


def _registry(town: TownExport) -> TownRegistry:
    registry = TownRegistry(town.town.code, shards=16)
    changes = [
        Upsert(table, record_id(table, obj), to_record(obj), to_record(obj))
        for table, objects in (("residents", town.residents), ("households", town.households))
        for obj in objects
    ]
    registry.apply(changes)
    return registry


def _collections_during_opening(registry: TownRegistry) -> tuple[OpenTown, int]:
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.collect()
    threshold = gc.get_threshold()
    gc.set_threshold(50)  # a collection every 50 allocations if the collector is running
    gc.callbacks.append(count)
    try:
        opened = OpenTown("15307", "", "", registry)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    return opened, len(runs)


def test_opening_a_town_pauses_the_garbage_collector(town: TownExport) -> None:
    opened, runs = _collections_during_opening(_registry(town))
    assert runs <= 1  # at most the one when the collector resumes, after the work
    assert gc.isenabled()  # and the collector runs again afterwards
    person = town.residents[0]
    assert person.id in {row.resident_id for row in opened.search(person.kana, 200)}


def test_the_check_sees_collections_when_the_pause_is_removed(
    town: TownExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import nullcontext

    import edge.town

    monkeypatch.setattr(edge.town, "gc_paused", nullcontext)
    _, runs = _collections_during_opening(_registry(town))
    assert runs > 10
