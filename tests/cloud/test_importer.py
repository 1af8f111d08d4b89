"""The import of the core system's export: validation, 支援措置 first, diffs, deltas —
written into the hub's sync log, sealed, and read back from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloud.custody import Custody
from cloud.importer import import_export
from cloud.replica import HubReplica
from cloud.synthetic.daily import next_day
from renkei.cli import main
from shared.export_csv import open_town, read_town, write_export
from shared.model import TownExport
from shared.records import TABLES
from shared.registry import TownRegistry, Upsert
from shared.storage import MemoryStorage, SqliteStorage, Storage
from shared.sync.log import BlobLog

PASSPHRASE = "hub operator passphrase for tests"
CUSTODY = Custody.create()


@pytest.fixture(autouse=True)
def _operator_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """`renkei import` unseals the hub's key custody with the operator's passphrase."""
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)


def _import(root: Path, storage: Storage, **kw: object):  # type: ignore[no-untyped-def]
    return import_export(root, storage, custody=CUSTODY, **kw)  # type: ignore[arg-type]


def _registry(storage: Storage, code: str, custody: Custody = CUSTODY) -> TownRegistry:
    """The town as a box would open it: from the sealed blobs of the hub's log."""
    return HubReplica(storage, custody).registry(code)


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


def _residents(storage: Storage, code: str, custody: Custody = CUSTODY) -> dict[str, object]:
    return dict(_registry(storage, code, custody).records("residents"))


def test_import_then_reimport_changes_nothing(small_export_dir: Path) -> None:
    storage = MemoryStorage()
    first = _import(small_export_dir, storage)
    assert first.ok, first.summary()
    towns = ("15307", "15405", "15581")
    before = BlobLog(storage).have(towns)
    imports = storage.load_range(("15307", "import"))
    second = _import(small_export_dir, storage)
    assert second.ok
    assert all(not (r.added or r.changed or r.removed) for r in second.results)
    assert BlobLog(storage).have(towns) == before  # not one blob more
    assert storage.load_range(("15307", "import")) == imports


def test_the_log_holds_sealed_blobs_only_and_the_as_of_statement(
    small_export_dir: Path, small_exports: list[TownExport]
) -> None:
    storage = MemoryStorage()
    assert _import(small_export_dir, storage).ok
    log = BlobLog(storage, authority=HubReplica(storage, CUSTODY).peer_id)
    for export in small_exports:
        code = export.town.code
        assert log.count(code) and log.verify_all() == []
        notice = log.notices.get(code, "as-of")
        assert notice is not None and notice.as_of == export.exported_at
        assert log.as_of_held(code) == notice  # the hub holds every blob it covers
    # No plaintext document anywhere in the hub's store beside the log.
    assert not [k for k, _ in storage.load_range(()) if len(k) > 1 and k[1] in ("doc", "update")]


def test_generate_import_export_reproduces_the_data(small_export_dir: Path) -> None:
    """What the registry holds equals what the export says once each town's legacy 外字
    are mapped (the one change an import makes on purpose)."""
    storage = MemoryStorage()
    assert _import(small_export_dir, storage).ok
    for folder in sorted(small_export_dir.iterdir()):
        export = read_town(folder)
        registry = _registry(storage, export.town.code)
        for table in (t for t in TABLES if t != "town"):
            stored = sorted(registry.objects(table), key=repr)
            assert stored == sorted(getattr(export, table), key=repr), table


def test_bad_tax_row_stops_that_file_only_and_blocks_still_land(
    small_export_dir: Path, tmp_path: Path, small_exports: list[TownExport]
) -> None:
    storage = MemoryStorage()
    assert _import(small_export_dir, storage).ok
    day2 = tmp_path / "day2"
    write_export(next_day(small_exports, seed=3, fraction=0.05), day2)
    _replace_cell(day2 / "15307" / "kazei.csv", 5, "市町村民税額", "十万")
    report = _import(day2, storage)
    assert not report.ok
    failed = [r for r in report.results if r.error]
    assert [(r.town_code, r.table) for r in failed] == [("15307", "tax_assessments")]
    assert "kazei.csv:5:" in failed[0].error
    new_block = open_town(day2 / "15307").parse("support_blocks")[-1]
    registry = _registry(storage, "15307")
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
    custody = Custody.load(data, PASSPHRASE)
    table = "residents" if name == "jumin.csv" else "households"
    registry = _registry(storage, "15405", custody)
    assert list(registry.records(table)) == []
    # Other towns and the other files of this town still imported.
    assert _residents(storage, "15307", custody)
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
    assert _import(small_export_dir, storage).ok
    day2 = tmp_path / "day2"
    write_export(next_day(small_exports, seed=5, fraction=0.01), day2)
    report = _import(day2, storage)
    assert report.ok, report.summary()
    changed = [r for r in report.results if r.added or r.changed or r.removed]
    assert changed
    for result in changed:
        per_record = result.delta_bytes / (result.added + result.changed + result.removed)
        assert per_record < 400, (result.table, per_record)
    total = sum(r.delta_bytes for r in report.results)
    assert total < 20_000, total


def _box_edit(storage: Storage, code: str, fields: dict[str, object]) -> tuple[str, str]:
    """A clerk's edit made on a box that reached the hub by sync: a blob of another
    writer in the hub's log, which the hub applies like any replica."""
    from shared.sync.identity import Identity
    from shared.sync.replica import SyncReplica

    box = SyncReplica(MemoryStorage(), Identity.generate(), keyrings=[CUSTODY.ring(code)])
    hub_log = BlobLog(storage)
    box.log.add_many(blob for _, blob in hub_log.load_town(code))
    rid, record = next(iter(box.registries[code].records("residents")))
    refs = box.edit(code, [Upsert("residents", rid, fields, {**record, **fields}, record)])
    hub_log.add_many(box.log.load(ref) for ref in refs)
    return rid, str(record["kana"])


def test_box_edit_is_not_reverted_by_an_unchanged_row(small_export_dir: Path) -> None:
    storage = MemoryStorage()
    assert _import(small_export_dir, storage).ok
    rid, _ = _box_edit(storage, "15307", {"kana": "ボックス"})
    assert _import(small_export_dir, storage).ok
    assert _registry(storage, "15307").get("residents", rid).kana == "ボックス"


def test_an_import_that_overwrites_a_box_edit_lists_it_for_review(
    small_export_dir: Path, tmp_path: Path
) -> None:
    storage = MemoryStorage()
    assert _import(small_export_dir, storage).ok
    rid, kana = _box_edit(storage, "15307", {"kana": "ボックス"})
    day2 = _copy(small_export_dir, tmp_path / "day2")
    path = day2 / "15307" / "jumin.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    line = next(i for i, text in enumerate(lines) if text.split(",")[0] == rid)
    _replace_cell(path, line + 1, "氏名_フリガナ", "キカンケイ")
    report = _import(day2, storage)
    assert report.ok, report.summary()
    hub = HubReplica(storage, CUSTODY)
    (item,) = hub.review_items("15307")
    assert (item["kind"], item["record"], item["field"]) == ("import", rid, "kana")
    assert [v["value"] for v in item["values"]] == ["キカンケイ", "ボックス"]
    assert hub.registry("15307").get("residents", rid).kana == "キカンケイ"
    assert kana != "キカンケイ"
