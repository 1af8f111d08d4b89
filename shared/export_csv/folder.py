"""Whole exports: write a town's folder, parse its files, check references across files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from shared.districts import load_districts
from shared.model import (
    Clerk,
    District,
    GaijiMapping,
    Household,
    Installment,
    NhiMember,
    Resident,
    SupportBlock,
    SupportNeed,
    TaxAssessment,
    Town,
    TownExport,
    Vehicle,
)

from . import town_json
from .codec import ENCODINGS, Row, check_header, decode, encode, write_rows
from .errors import ExportFormatError, ExportReferenceError, ExportWriteError
from .gaiji import gaiji_table
from .layout import (
    BY_NAME,
    FILES,
    GAIJI,
    JUMIN,
    KAZEI,
    KEIJIDOSHA,
    KOKUHO,
    NOUZEI,
    SETAI,
    SHIEN_SOCHI,
    YOSHIENSHA,
    Context,
    FileSpec,
)

T = TypeVar("T")
MAX_ERRORS = 100  # per file; enough to fix a systematic fault in one round


# ---------------------------------------------------------------------------- write


def write_town(export: TownExport, folder: Path, *, encoding: str = "utf-8") -> None:
    """Write one town's export into `folder` (conventionally named after the town code).

    Deterministic: the same export gives byte-identical files (rows sorted by key, LF line
    ends, no time but `export.exported_at`). Everything is rendered before the first file
    is written, so a refused value (ExportWriteError) leaves no half-written export.
    `encoding="cp932"` writes what a legacy core system writes and refuses characters
    CP932 cannot carry exactly (IVS, non-BMP, 〜 …).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}")
    code = export.town.code
    try:
        moment = datetime.fromisoformat(export.exported_at)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise ExportWriteError(
            f"exported_at「{export.exported_at}」は時差付きの ISO 8601 日時にしてください"
        )
    rendered: dict[str, bytes] = {
        town_json.NAME: town_json.dump(
            town_json.Manifest(export.town, export.exported_at, encoding)
        )
    }
    for spec in FILES:
        records: list[Any] = getattr(export, spec.attribute)
        for record in records:
            if record.town_code != code:
                raise ExportWriteError(
                    f"{spec.name}: 町村 {record.town_code} の記録は町村 {code} の出力に書けません"
                )
        path = folder / spec.name
        rows = [spec.to_row(record) for record in sorted(records, key=spec.key)]
        text = write_rows(path, spec.header, rows)
        rendered[spec.name] = encode(path, text, encoding, spec.header)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in rendered.items():
        (folder / name).write_bytes(data)


def write_export(exports: Iterable[TownExport], root: Path, *, encoding: str = "utf-8") -> None:
    """Write each town into `root/<town code>/`."""
    seen: set[str] = set()
    for export in exports:
        if export.town.code in seen:
            raise ExportWriteError(f"町村 {export.town.code} が二度出力されようとしています")
        seen.add(export.town.code)
        write_town(export, root / export.town.code, encoding=encoding)


# ---------------------------------------------------------------------------- parse


def read_manifest(folder: Path) -> town_json.Manifest:
    """`folder/town.json`, validated; the folder must be named after the town code."""
    manifest = town_json.load(folder)
    if folder.name != manifest.town.code:
        raise ExportFormatError(
            folder / town_json.NAME,
            f"フォルダ名「{folder.name}」が団体コード「{manifest.town.code}」と違います",
            "the folder named after town.code",
            column="town.code",
        )
    return manifest


@overload
def parse_file(
    folder: Path,
    name: Literal["shien_sochi.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[SupportBlock]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["setai.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[Household]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["jumin.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[Resident]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["kazei.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[TaxAssessment]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["keijidosha.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[Vehicle]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["nouzei.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[Installment]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["kokuho.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[NhiMember]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["yoshiensha.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[SupportNeed]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["shokuin.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[Clerk]: ...
@overload
def parse_file(
    folder: Path,
    name: Literal["gaiji.csv"],
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[GaijiMapping]: ...
@overload
def parse_file(
    folder: Path,
    name: str,
    manifest: town_json.Manifest | None = ...,
    *,
    gaiji: Iterable[GaijiMapping] | None = ...,
    districts: Sequence[District] | None = ...,
) -> list[Any]: ...
def parse_file(
    folder: Path,
    name: str,
    manifest: town_json.Manifest | None = None,
    *,
    gaiji: Iterable[GaijiMapping] | None = None,
    districts: Sequence[District] | None = None,
) -> list[Any]:
    """Parse and validate every row of one CSV file of `folder`, in file order.

    `manifest` (town.json: the town and the files' encoding) is read from the folder when
    not given; so are the town's 外字 table (`gaiji`, from gaiji.csv) and its districts
    (from shared/data/districts.tsv). Pass them when parsing several files. Raises
    ExportFormatError (first problem; the rest in `.also`). References to other files are
    not checked here: see `cross_check`.
    """
    spec = BY_NAME.get(name)
    if spec is None:
        raise ValueError(f"unknown export file {name!r}; known: {sorted(BY_NAME)}")
    if manifest is None:
        manifest = read_manifest(folder)
    table: dict[str, str] | None = None
    if spec is not GAIJI:
        mappings = parse_file(folder, "gaiji.csv", manifest) if gaiji is None else gaiji
        table = gaiji_table(mappings)
    every = load_districts() if districts is None else districts
    town_districts: dict[str, set[str]] = {}
    for district in every:
        if district.town_code == manifest.town.code:
            town_districts.setdefault(district.name, set()).add(district.postal_code)
    context = Context(manifest.town.code, {k: frozenset(v) for k, v in town_districts.items()})
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportFormatError(
            path,
            f"{name} がありません（記録がなくても見出し行だけのファイルが必要です）",
            "the file, with at least its header line",
        ) from None
    text = decode(path, data, manifest.encoding, spec.header)
    return _parse_rows(path, text, spec, context, table)


def _parse_rows(
    path: Path, text: str, spec: FileSpec[T], context: Context, table: dict[str, str] | None
) -> list[T]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        found = next(reader, None)
    except csv.Error as exc:
        raise _csv_error(path, 1, exc) from exc
    check_header(path, spec.header, found)
    records: list[T] = []
    errors: list[ExportFormatError] = []
    first_line: dict[tuple[object, ...], int] = {}
    blank: int | None = None
    end = reader.line_num
    while len(errors) < MAX_ERRORS:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(_csv_error(path, end + 1, exc))
            break
        line, end = end + 1, reader.line_num
        if not cells:
            blank = line if blank is None else blank
            continue
        if blank is not None:  # blank lines are tolerated only at the end of a file
            errors.append(ExportFormatError(path, "空行があります", "no blank lines", line=blank))
            blank = None
        try:
            _check_count(path, line, spec.header, cells)
            record = spec.from_row(Row(path, line, spec.header, cells, table), context)
            key = spec.key(record)
            if key in first_line:
                raise ExportFormatError(
                    path,
                    f"{spec.header[0]}「{cells[0]}」が重複しています"
                    f"（{first_line[key]}行目と同じ）",
                    f"a unique key; first seen on line {first_line[key]}",
                    line=line,
                    column=spec.header[0],
                    column_index=1,
                    value=cells[0],
                )
            first_line[key] = line
            records.append(record)
        except ExportFormatError as exc:
            errors.append(exc)
    if errors:
        raise errors[0].with_also(errors[1:])
    return records


def _csv_error(path: Path, line: int, exc: csv.Error) -> ExportFormatError:
    return ExportFormatError(
        path,
        f"CSV として読めません（引用符の対応などを確認してください: {exc}）",
        f"RFC 4180 fields ({exc})",
        line=line,
    )


def _check_count(path: Path, line: int, header: Sequence[str], cells: list[str]) -> None:
    if len(cells) > len(header):
        raise ExportFormatError(
            path,
            f"項目が多すぎます（見出しは{len(header)}列、この行は{len(cells)}列）",
            f"{len(header)} fields, found {len(cells)}",
            line=line,
            column_index=len(header) + 1,
        )
    if len(cells) < len(header):
        raise ExportFormatError(
            path,
            f"項目が足りません（見出しは{len(header)}列、この行は{len(cells)}列）",
            f"{len(header)} fields, found {len(cells)}",
            line=line,
            column=header[len(cells)],
            column_index=len(cells) + 1,
        )


@dataclass(frozen=True, slots=True)
class TownFiles:
    """An opened town folder: town.json and gaiji.csv read, the other files parsed on demand.

    For an importer that takes the files in its own order (支援措置 of every town first).
    """

    folder: Path
    manifest: town_json.Manifest
    town: Town  # with legacy 外字 in its text mapped
    gaiji: list[GaijiMapping]
    districts: Sequence[District]

    @property
    def exported_at(self) -> str:
        return self.manifest.exported_at

    def parse(self, table: str) -> list[Any]:
        """One file's records; `table` is a TownExport field ("residents") or a file name."""
        spec = next((s for s in FILES if table in (s.attribute, s.name)), None)
        if spec is None:
            raise ValueError(f"unknown export table {table!r}")
        if spec is GAIJI:
            return list(self.gaiji)
        return parse_file(
            self.folder, spec.name, self.manifest, gaiji=self.gaiji, districts=self.districts
        )

    def read(self) -> TownExport:
        """Every file, then `cross_check`."""
        parsed = {spec.attribute: self.parse(spec.name) for spec in FILES}
        export = TownExport(town=self.town, exported_at=self.exported_at, **parsed)
        cross_check(export, self.folder)
        return export


def open_town(folder: Path, *, districts: Sequence[District] | None = None) -> TownFiles:
    """Read `town.json` and `gaiji.csv` of a town folder (validated)."""
    manifest = read_manifest(folder)
    every = load_districts() if districts is None else districts
    gaiji = parse_file(folder, "gaiji.csv", manifest, districts=every)
    town = town_json.map_gaiji(folder / town_json.NAME, manifest.town, gaiji_table(gaiji))
    return TownFiles(folder, manifest, town, gaiji, every)


def read_town(folder: Path, *, districts: Sequence[District] | None = None) -> TownExport:
    """Parse and validate a whole town folder, including `cross_check`."""
    return open_town(folder, districts=districts).read()


# ---------------------------------------------------------------------------- references


def cross_check(export: TownExport, folder: Path | None = None) -> None:
    """Check references between files: every id a row names exists in the file it refers to.

    The lists must be in file order as `parse_file` returns them: the row of item i is
    reported as line i + 2 of its file. Raises ExportReferenceError (first; rest in
    `.also`).
    """
    base = Path(export.town.code) if folder is None else folder
    residents = {p.id: p for p in export.residents}
    households = {h.id for h in export.households}
    vehicles = {v.id for v in export.vehicles}
    errors: list[ExportFormatError] = []

    def refer(
        spec: FileSpec[Any],
        index: int,
        column: str,
        ref: str,
        target: FileSpec[Any],
        known: Iterable[str],
    ) -> None:
        if ref and ref not in known:
            errors.append(
                ExportReferenceError(
                    base / spec.name,
                    f"{target.name} にない{target.header[0]}「{ref}」を参照しています",
                    f"an existing {target.header[0]} of {target.name}",
                    line=index + 2,
                    column=column,
                    column_index=spec.header.index(column) + 1,
                    value=ref,
                )
            )

    for i, h in enumerate(export.households):
        refer(SETAI, i, "世帯主_宛名番号", h.head_id, JUMIN, residents)
        head = residents.get(h.head_id)
        if head is not None and head.household_id != h.id:
            errors.append(
                ExportReferenceError(
                    base / SETAI.name,
                    f"世帯主「{h.head_id}」は jumin.csv で"
                    f"世帯「{head.household_id}」に属しています",
                    "a head who belongs to this household",
                    line=i + 2,
                    column="世帯主_宛名番号",
                    column_index=2,
                    value=h.head_id,
                )
            )
    for i, p in enumerate(export.residents):
        refer(JUMIN, i, "世帯番号", p.household_id, SETAI, households)
    for i, b in enumerate(export.support_blocks):
        for person in b.protected_ids:
            refer(SHIEN_SOCHI, i, "対象者_宛名番号", person, JUMIN, residents)
        refer(SHIEN_SOCHI, i, "世帯番号", b.household_id, SETAI, households)
    for i, t in enumerate(export.tax_assessments):
        refer(KAZEI, i, "宛名番号", t.resident_id, JUMIN, residents)
    for i, v in enumerate(export.vehicles):
        refer(KEIJIDOSHA, i, "納税義務者_宛名番号", v.owner_id, JUMIN, residents)
    for i, n in enumerate(export.installments):
        refer(NOUZEI, i, "納税義務者_宛名番号", n.taxpayer_id, JUMIN, residents)
        refer(NOUZEI, i, "車両番号", n.vehicle_id, KEIJIDOSHA, vehicles)
    for i, m in enumerate(export.nhi_members):
        refer(KOKUHO, i, "宛名番号", m.resident_id, JUMIN, residents)
    for i, s in enumerate(export.support_needs):
        refer(YOSHIENSHA, i, "宛名番号", s.resident_id, JUMIN, residents)
    if errors:
        raise errors[0].with_also(errors[1:])
