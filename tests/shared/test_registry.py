"""Records ⇄ model and registry documents ⇄ model, deltas and shard placement."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import residents

from shared import model
from shared.crdt import CrdtError, CrdtPendingError, RecordDocument
from shared.records import from_record, to_record
from shared.registry import Delete, TownRegistry, Upsert


def _upsert(table: str, obj: object, previous: object | None = None) -> Upsert:
    record = to_record(obj)
    return Upsert(
        table,
        str(obj.id),  # type: ignore[attr-defined]
        record,
        record,
        None if previous is None else to_record(previous),
    )


@settings(max_examples=200, deadline=None)
@given(resident=residents())
def test_record_round_trip(resident: model.Resident) -> None:
    assert from_record(model.Resident, to_record(resident)) == resident


@settings(max_examples=60, deadline=None)
@given(resident=residents())
def test_document_round_trip_through_snapshot(resident: model.Resident) -> None:
    registry = TownRegistry("15307", shards=4)
    registry.apply([_upsert("residents", resident)])
    copy = TownRegistry("15307", shards=4)
    for name, data in registry.snapshots().items():
        copy.load(name, data)
    assert copy.get("residents", resident.id) == resident
    assert copy.get("residents", resident.id, anchor=resident.household_id) == resident


@given(resident=residents())
@settings(max_examples=30, deadline=None)
def test_field_edit_is_a_small_delta(resident: model.Resident) -> None:
    registry = TownRegistry("15307", shards=4)
    registry.apply([_upsert("residents", resident)])
    changed = dataclasses.replace(resident, kana="テスト")
    deltas = registry.apply(
        [Upsert("residents", resident.id, {"kana": "テスト"}, to_record(changed))]
    )
    assert len(deltas) == 1
    assert sum(len(d) for d in deltas.values()) < 400
    assert registry.get("residents", resident.id) == changed


@given(resident=residents())
@settings(max_examples=10, deadline=None)
def test_move_to_household_in_another_shard_leaves_no_copy(resident: model.Resident) -> None:
    registry = TownRegistry("15307", shards=64)
    registry.apply([_upsert("residents", resident)])
    other = next(
        f"15307-H{n:05d}"
        for n in range(1000)
        if registry.document_name("residents", resident.id, {"household_id": f"15307-H{n:05d}"})
        != registry.document_name("residents", resident.id, to_record(resident))
    )
    moved = dataclasses.replace(resident, household_id=other)
    registry.apply([_upsert("residents", moved, previous=resident)])
    assert [r for r, _ in registry.records("residents")] == [resident.id]
    assert registry.get("residents", resident.id) == moved


@given(resident=residents())
@settings(max_examples=10, deadline=None)
def test_delete_removes_record(resident: model.Resident) -> None:
    registry = TownRegistry("15307", shards=4)
    registry.apply([_upsert("residents", resident)])
    registry.apply([Delete("residents", resident.id, to_record(resident))])
    assert registry.get("residents", resident.id) is None


@given(people=st.lists(residents(), min_size=1, max_size=8, unique_by=lambda r: r.id))
@settings(max_examples=20, deadline=None)
def test_records_reads_all_or_only_the_fields_asked(people: list[model.Resident]) -> None:
    registry = TownRegistry("15307", shards=2)
    registry.apply([_upsert("residents", r) for r in people])
    registry.apply([Upsert("residents", people[0].id, {"name": "改"}, {**to_record(people[0])})])
    del_field = people[-1]
    doc_name = registry.document_name("residents", del_field.id, to_record(del_field))
    registry.documents[doc_name]._doc.get_map("residents").get(del_field.id).container.delete(
        "honseki"
    )  # a record that lacks a field: only the fields it holds are returned
    fields = ["name", "honseki", "removal.reason", "no-such-field"]
    for doc in registry.documents.values():
        whole = doc.records("residents")
        assert whole == {k: doc.get("residents", k) for k in doc.ids("residents")}
        some = doc.records("residents", fields)
        assert some == {k: {f: v for f, v in r.items() if f in fields} for k, r in whole.items()}
    pairs = list(registry.resident_records_with_households())
    assert pairs == []  # no households stored: no resident is paired
    assert {r.id for r in people} == {k for k, _ in registry.records("residents")}


def test_changed_since_lists_touched_records() -> None:
    doc = RecordDocument("t")
    doc.set_fields("residents", "a", {"name": "x"})
    doc.set_fields("residents", "b", {"name": "y"})
    doc.commit()
    version = doc.version()
    doc.set_fields("residents", "a", {"name": "z"})
    doc.delete("residents", "b")
    doc.set_fields("households", "h", {"district": "亀塚"})
    doc.commit()
    assert set(doc.changed_since(version)) == {
        ("residents", "a"),
        ("residents", "b"),
        ("households", "h"),
    }


def test_garbage_import_is_a_crdt_error() -> None:
    with pytest.raises(CrdtError):
        RecordDocument.from_bytes("t", b"not a loro blob")


def test_update_without_its_base_is_refused_not_left_pending() -> None:
    doc = RecordDocument("t")
    doc.set_fields("residents", "a", {"name": "x"})
    doc.commit()
    version = doc.version()
    doc.set_fields("residents", "a", {"name": "y"})
    doc.commit()
    with pytest.raises(CrdtPendingError):
        RecordDocument.from_bytes("t", doc.export_updates(version))


def test_each_document_has_its_own_peer_id() -> None:
    ids = {RecordDocument("t")._doc.peer_id for _ in range(50)}
    assert len(ids) == 50


@given(st.data())
@settings(max_examples=20, deadline=None)
def test_concurrent_field_edits_converge(data: st.DataObject) -> None:
    base = RecordDocument("t")
    base.set_fields("residents", "a", {"name": "x", "kana": "エックス"})
    base.commit()
    left = RecordDocument.from_bytes("t", base.export_snapshot())
    right = RecordDocument.from_bytes("t", base.export_snapshot())
    left.set_fields("residents", "a", {"name": data.draw(st.text(max_size=5))})
    right.set_fields("residents", "a", {"kana": data.draw(st.text(max_size=5))})
    left.commit()
    right.commit()
    left.import_bytes(right.export_updates())
    right.import_bytes(left.export_updates())
    assert left.get("residents", "a") == right.get("residents", "a")
