"""The import of the core system's export: validation, 支援措置 first, diffs, deltas."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloud.importer import import_export
from cloud.store import TownStore
from cloud.synthetic.daily import next_day
from renkei.cli import main
from shared.export_csv import open_town, read_town, write_export
from shared.model import TownExport
from shared.records import TABLES
from shared.storage import MemoryStorage, SqliteStorage, Storage


@pytest.fixture(autouse=True)
def _operator_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """`renkei import` unseals the hub's key custody with the operator's passphrase."""
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", "hub operator passphrase for tests")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _replace_cell(path: Path, line: int, column: str, value: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")


def _residents(storage: Storage, code: str) -> dict[str, object]:
    registry = TownStore(storage, code).load_registry(shards=16)
    return dict(registry.records("residents"))


def test_import_then_reimport_changes_nothing(small_export_dir: Path) -> None:
    storage = MemoryStorage()
    first = import_export(small_export_dir, storage)
    assert first.ok, first.summary()
    before = {key: data for key, data in storage.load_range(())}
    second = import_export(small_export_dir, storage)
    assert second.ok
    assert all(not (r.added or r.changed or r.removed) for r in second.results)
    assert {key: data for key, data in storage.load_range(())} == before


def test_generate_import_export_reproduces_the_data(small_export_dir: Path) -> None:
    """What the registry holds equals what the export says once each town's legacy 外字
    are mapped (the one change an import makes on purpose)."""
    storage = MemoryStorage()
    assert import_export(small_export_dir, storage).ok
    for folder in sorted(small_export_dir.iterdir()):
        export = read_town(folder)
        registry = TownStore(storage, export.town.code).load_registry(shards=16)
        for table in (t for t in TABLES if t != "town"):
            stored = sorted(registry.objects(table), key=repr)
            assert stored == sorted(getattr(export, table), key=repr), table


def test_bad_tax_row_stops_that_file_only_and_blocks_still_land(
    small_export_dir: Path, tmp_path: Path, small_exports: list[TownExport]
) -> None:
    storage = MemoryStorage()
    assert import_export(small_export_dir, storage).ok
    day2 = tmp_path / "day2"
    write_export(next_day(small_exports, seed=3, fraction=0.05), day2)
    _replace_cell(day2 / "15307" / "kazei.csv", 5, "市町村民税額", "十万")
    report = import_export(day2, storage)
    assert not report.ok
    failed = [r for r in report.results if r.error]
    assert [(r.town_code, r.table) for r in failed] == [("15307", "tax_assessments")]
    assert "kazei.csv:5:" in failed[0].error
    new_block = open_town(day2 / "15307").parse("support_blocks")[-1]
    registry = TownStore(storage, "15307").load_registry(shards=16)
    assert registry.get("support_blocks", new_block.id) == new_block
    # The tax file was not applied at all: the registry still holds day 1's assessments.
    day1_tax = sorted(read_town(small_export_dir / "15307").tax_assessments, key=repr)
    assert sorted(registry.objects("tax_assessments"), key=repr) == day1_tax


BAD_ROWS = [
    ("jumin.csv", "生年月日", "2023-02-30"),
    ("setai.csv", "住所_町字", "存在しない大字"),
    ("jumin.csv", "氏名", None),  # missing column (cell removed)
    ("jumin.csv", "個人番号", "123456789010"),
    ("jumin.csv", "宛名番号", "__duplicate__"),
]


@pytest.mark.parametrize(("name", "column", "value"), BAD_ROWS)
def test_malformed_row_names_file_line_column_and_applies_nothing_of_it(
    small_export_dir: Path, tmp_path: Path, name: str, column: str, value: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = _copy(small_export_dir, tmp_path / "export")
    path = export / "15405" / name
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    col = header.index(column) + 1
    if value is None:
        cells = lines[3].split(",")
        del cells[col - 1]
        lines[3] = ",".join(cells)
    elif value == "__duplicate__":
        lines[3] = lines[2]
    else:
        cells = lines[3].split(",")
        cells[col - 1] = value
        lines[3] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")
    data = tmp_path / "hub"
    code = main(["import", str(export), "--data", str(data)])
    err = capsys.readouterr().err
    assert code != 0
    assert f"{name}:4:" in err, err
    storage = SqliteStorage(data / "hub.db")
    table = "residents" if name == "jumin.csv" else "households"
    registry = TownStore(storage, "15405").load_registry(shards=16)
    assert list(registry.records(table)) == []
    # Other towns and the other files of this town still imported.
    assert _residents(storage, "15307")
    storage.close()


def test_broken_utf8_is_refused_with_location(
    small_export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _copy(small_export_dir, tmp_path / "export")
    path = export / "15581" / "jumin.csv"
    data = path.read_bytes()
    cut = data.index(b"\n", data.index(b"\n") + 1) + 5
    path.write_bytes(data[:cut] + b"\xff\xfe" + data[cut:])
    assert main(["import", str(export), "--data", str(tmp_path / "hub")]) != 0
    assert "jumin.csv:3:" in capsys.readouterr().err  # the third line holds the bad bytes


def test_next_day_import_is_a_small_delta(
    small_export_dir: Path, tmp_path: Path, small_exports: list[TownExport]
) -> None:
    storage = MemoryStorage()
    assert import_export(small_export_dir, storage).ok
    day2 = tmp_path / "day2"
    write_export(next_day(small_exports, seed=5, fraction=0.01), day2)
    report = import_export(day2, storage)
    assert report.ok, report.summary()
    changed = [r for r in report.results if r.added or r.changed or r.removed]
    assert changed
    for result in changed:
        per_record = result.delta_bytes / (result.added + result.changed + result.removed)
        assert per_record < 400, (result.table, per_record)
    total = sum(r.delta_bytes for r in report.results)
    assert total < 20_000, total


def test_box_edit_is_not_reverted_by_an_unchanged_row(small_export_dir: Path) -> None:
    storage = MemoryStorage()
    assert import_export(small_export_dir, storage).ok
    store = TownStore(storage, "15307")
    registry = store.load_registry(shards=16)
    rid, record = next(iter(registry.records("residents")))
    from shared.registry import Upsert

    deltas = registry.apply([Upsert("residents", rid, {"kana": "ボックス"}, record)])
    store.commit_import(deltas, "box-edit", {})
    assert import_export(small_export_dir, storage).ok
    reloaded = store.load_registry(shards=16)
    assert reloaded.get("residents", rid).kana == "ボックス"
