"""Every box numbers its certificates in its own series: the 発行番号's box part comes
from the box key, so two boxes issuing for the same town never collide."""

from pathlib import Path

from edge.boxkey import box_code
from edge.worker import TownWorker
from shared.issuance.numbering import check_part


def test_two_boxes_have_different_stable_codes(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert box_code(first) != box_code(second)
    assert box_code(first) == box_code(first)  # stable across restarts: same key file
    assert check_part(box_code(first), "機器") == box_code(first)


def test_worker_numbers_under_its_box_code(tmp_path: Path) -> None:
    worker = TownWorker(tmp_path, "15307", 4)
    try:
        assert worker.box_id == box_code(tmp_path)
    finally:
        worker.storage.close()
