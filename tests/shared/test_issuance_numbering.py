"""発行番号: unique across boxes, never reused (also after a restart), voided numbers
recorded, a separate drill series; and the drill mode around it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_issuance_town import NOW, context, request_for, town_data

from shared.issuance import drill
from shared.issuance.decisions import decide
from shared.issuance.errors import NumberingError
from shared.issuance.fees import Reduction
from shared.issuance.numbering import IssueNumber, NumberAllocator, voided_numbers
from shared.issuance.requests import DocumentKind, RequesterKind
from shared.storage import MemoryStorage, SqliteStorage, Storage

DAY = date(2026, 11, 26)


def test_number_format_and_pages() -> None:
    number = NumberAllocator(MemoryStorage(), "15307", "B01").allocate(DAY, "T02", "P1")
    assert str(number) == "20261126-15307-B01-T02-P1-000001"
    assert number.page(2, 3) == "20261126-15307-B01-T02-P1-000001 2/3"
    assert IssueNumber.parse(number.page(2, 3)) == number
    with pytest.raises(NumberingError):
        number.page(4, 3)
    with pytest.raises(NumberingError):
        IssueNumber.parse("2026-11-26-x")
    with pytest.raises(NumberingError):
        NumberAllocator(MemoryStorage(), "15307", "B-01")


@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["B01", "B02", "B03"]), st.booleans(), st.booleans()),
        max_size=40,
    )
)
def test_unique_across_boxes_and_restarts(plan: list[tuple[str, bool, bool]]) -> None:
    """Boxes allocate in any interleaving, each with its own storage (they never talk);
    a box may restart (a new allocator over the same storage) at any point."""
    stores: dict[str, Storage] = {box: MemoryStorage() for box in ("B01", "B02", "B03")}
    allocators = {box: NumberAllocator(stores[box], "15307", box) for box in stores}
    seen: set[str] = set()
    for box, restart, is_drill in plan:
        if restart:
            allocators[box] = NumberAllocator(stores[box], "15307", box)
        number = str(allocators[box].allocate(DAY, "T1", "P1", drill=is_drill))
        assert number not in seen
        seen.add(number)


def test_voided_numbers_are_recorded_and_never_handed_out_again() -> None:
    storage = MemoryStorage()
    allocator = NumberAllocator(storage, "15307", "B01")
    first = allocator.allocate(DAY, "T1", "P1")
    allocator.void(first, at=NOW, reason="紙詰まり", sheets=1, clerk_id="seiro.sato")
    second = NumberAllocator(storage, "15307", "B01").allocate(DAY, "T1", "P1")
    assert second.serial == first.serial + 1
    assert [v.number for v in voided_numbers(storage, "15307")] == [str(first)]
    with pytest.raises(NumberingError):
        allocator.void(first, at=NOW, reason="紙詰まり", sheets=1, clerk_id="x")
    never = IssueNumber(DAY, "15307", "B01", "T1", "P1", 99)
    with pytest.raises(NumberingError):
        allocator.void(never, at=NOW, reason="?", sheets=1, clerk_id="x")
    other_box = IssueNumber(DAY, "15307", "B02", "T1", "P1", 1)
    with pytest.raises(NumberingError):
        allocator.void(other_box, at=NOW, reason="?", sheets=1, clerk_id="x")


def test_drill_numbers_are_a_separate_series() -> None:
    storage = MemoryStorage()
    allocator = NumberAllocator(storage, "15307", "B01")
    live = allocator.allocate(DAY, "T1", "P1")
    practice = allocator.allocate(DAY, "T1", "P1", drill=True)
    assert live.serial == practice.serial == 1
    assert str(practice).startswith("D") and drill.is_drill_number(str(practice))
    assert not drill.is_drill_number(str(live))
    assert allocator.allocate(DAY, "T1", "P1").serial == 2  # the drill took nothing from it


def test_drill_mode_issues_samples_from_synthetic_residents_only() -> None:
    request = request_for(RequesterKind.SELF, DocumentKind.JUMINHYO)
    on_real = decide(request, context(drill=True))
    assert on_real.refusal is not None and on_real.refusal.code == "drill_real_data"
    synthetic = town_data(synthetic=True)
    sample = decide(request, context(synthetic, drill=True))
    assert sample.issued and sample.sample
    assert sample.fee is not None and sample.fee.reduction is Reduction.DRILL
    assert sample.fee.payable == 0
    assert drill.marks(sample.sample).watermark == "見本"
    assert drill.marks(False).watermark == ""
    live_on_synthetic = decide(request, context(synthetic))
    assert live_on_synthetic.refusal is not None
    assert live_on_synthetic.refusal.code == "synthetic_in_live"


def test_counter_survives_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "box.sqlite"
    store = SqliteStorage(path)
    NumberAllocator(store, "15307", "B01").allocate(DAY, "T1", "P1")
    store.close()
    reopened = SqliteStorage(path)
    again = NumberAllocator(reopened, "15307", "B01").allocate(DAY, "T1", "P1")
    reopened.close()
    assert again.serial == 2
