"""The scheduled import of the core system's export into the towns' registry documents.

Order and atomicity (BRIEF §4, 支援措置 first):
1. the 支援措置 file of every town is validated and applied first, on its own, so a typo
   in a tax row never delays a new block;
2. then each other file, each validated whole before anything of it is applied: a bad
   row stops that file (the report names file:line:column) and nothing of it lands,
   while the other files still import.

Diffing: each table is compared with the *previous import* of that table (kept at the
hub), not with the documents' current state, so an edit made at a box is never reverted
by an unchanged row of the next export; only fields that changed in the core system are
written, so a day's import is a small delta.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.custody import Custody
from cloud.store import TownStore, towns_entry
from shared import export_csv, model
from shared.export_csv import ExportError, ExportFormatError, town_json
from shared.model import TownExport
from shared.records import Record, TownSettings, record_id, to_record
from shared.registry import DEFAULT_SHARDS, Change, Delete, TownRegistry, Upsert
from shared.storage import Storage

# Blocks first; households before residents (residents are checked against them).
TABLE_ORDER = (
    "support_blocks",
    "households",
    "residents",
    "tax_assessments",
    "vehicles",
    "installments",
    "nhi_members",
    "support_needs",
    "clerks",
    "gaiji",
)


@dataclass(slots=True)
class TableResult:
    town_code: str
    table: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    delta_bytes: int = 0
    error: str = ""


@dataclass(slots=True)
class ImportReport:
    results: list[TableResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not any(r.error for r in self.results)

    def summary(self) -> str:
        lines = []
        for r in self.results:
            if r.error:
                lines.append(f"{r.town_code} {r.table}: 取込中止 — {r.error}")
            elif r.added or r.changed or r.removed:
                lines.append(
                    f"{r.town_code} {r.table}: 追加 {r.added} 件、変更 {r.changed} 件、"
                    f"削除 {r.removed} 件（差分 {r.delta_bytes} バイト）"
                )
        lines.extend(self.errors)
        changed = sum(1 for r in self.results if r.added or r.changed or r.removed)
        lines.append("取込完了：変更なし" if not changed and self.ok else "取込終了")
        return "\n".join(lines)


def diff_table(
    table: str, previous: Mapping[str, Record], current: Mapping[str, Record]
) -> list[Change]:
    changes: list[Change] = []
    for rid, record in current.items():
        old = previous.get(rid)
        if old is None:
            changes.append(Upsert(table, rid, record, record))
        elif old != record:
            fields = {k: v for k, v in record.items() if old.get(k, object()) != v}
            changes.append(Upsert(table, rid, fields, record, old))
    for rid, old in previous.items():
        if rid not in current:
            changes.append(Delete(table, rid, old))
    return changes


def _import_table(
    store: TownStore,
    registry: TownRegistry,
    table: str,
    objects: Iterable[object],
    result: TableResult,
) -> set[str]:
    """Import one table; returns the names of the documents it changed."""
    current = {record_id(table, obj): to_record(obj) for obj in objects}
    previous = store.previous_import(table)
    changes = diff_table(table, previous, current)
    if not changes:
        return set()
    for change in changes:
        if isinstance(change, Delete):
            result.removed += 1
        elif change.previous is None:
            result.added += 1
        else:
            result.changed += 1
    deltas = registry.apply(changes, message=f"import {table}")
    result.delta_bytes = sum(len(d) for d in deltas.values())
    store.commit_import(deltas, table, current)
    return set(deltas)


def _parse_checked(files: export_csv.TownFiles) -> dict[str, list[Any] | ExportError]:
    """Parse every file but the 支援措置, then check references between them; a file with
    a bad row, or whose rows refer to records that are not there, gets its error."""
    parsed: dict[str, list[Any] | ExportError] = {}
    for table in TABLE_ORDER[1:]:
        try:
            parsed[table] = files.parse(table)
        except ExportError as exc:
            parsed[table] = exc
    good: dict[str, Any] = {t: v for t, v in parsed.items() if not isinstance(v, ExportError)}
    try:
        export_csv.cross_check(
            TownExport(town=files.town, **good, support_blocks=[]), files.folder
        )
    except ExportFormatError as exc:
        table_of = {spec.name: spec.attribute for spec in export_csv.FILES}
        for error in [exc, *exc.also]:
            owner: str | None = table_of.get(error.path.name)
            if owner and not isinstance(parsed.get(owner), ExportError):
                parsed[owner] = error
    return parsed


def import_export(
    root: Path,
    storage: Storage,
    shards: int = DEFAULT_SHARDS,
    custody: Custody | None = None,
    partner_without_my_number: Collection[str] = (),
) -> ImportReport:
    """Import every town folder under `root` (one folder per town code). With the hub's
    `custody`, every changed document is also published as a sealed blob for the boxes."""
    report = ImportReport()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not folders:
        report.errors.append(f"{root}: 町村のフォルダ（団体コード名）が見つかりません")
        return report
    towns: list[tuple[TownStore, TownRegistry, export_csv.TownFiles]] = []
    for folder in folders:
        try:
            files = export_csv.open_town(folder)
        except ExportError as exc:
            report.errors.append(str(exc))
            continue
        store = TownStore(storage, files.town.code)
        towns.append((store, store.load_registry(shards), files))

    def run(store: TownStore, registry: TownRegistry, table: str, get: Any) -> None:
        result = TableResult(store.town_code, table)
        report.results.append(result)
        try:
            objects = get()
            if isinstance(objects, ExportError):
                raise objects
            touched = _import_table(store, registry, table, objects, result)
            if table == "support_blocks":  # a new block is never left waiting in a log
                store.save_snapshots(registry, touched)
                if custody is not None:
                    custody.publish_documents(
                        storage,
                        registry,
                        sorted(touched),
                        partner_without_my_number=store.town_code in partner_without_my_number,
                    )
            changed.setdefault(store.town_code, set()).update(touched)
        except ExportError as exc:
            result.error = str(exc)

    changed: dict[str, set[str]] = {}

    # The 支援措置 of every town land before anything else of any town.
    for store, registry, files in towns:
        run(store, registry, "support_blocks", lambda f=files: f.parse("support_blocks"))
    for store, registry, files in towns:
        run(store, registry, "town", lambda f=files: _town_settings(f))
        parsed = _parse_checked(files)
        for table in TABLE_ORDER[1:]:
            run(store, registry, table, lambda v=parsed[table]: v)
        touched = changed.get(store.town_code, set())
        store.save_snapshots(registry, touched)
        if custody is not None:
            sealed = {key[2] for key, _ in storage.load_range((store.town_code, "sealed"))}
            missing = set(registry.documents) - sealed
            custody.publish_documents(
                storage,
                registry,
                sorted(touched | missing),
                partner_without_my_number=store.town_code in partner_without_my_number,
            )
        storage.save_many(
            [
                towns_entry(storage, store.town_code),
                ((store.town_code, "town"), _town_summary(files.town)),
                ((store.town_code, "as-of"), files.exported_at.encode()),
            ]
        )
    return report


def _town_settings(files: export_csv.TownFiles) -> list[TownSettings]:
    """The town's settings as one record of the directory document: boxes need the
    officials, seal rules and fees to print, and hold no file of their own."""
    return [TownSettings(town_json.dump_town(files.town))]


def _town_summary(town: model.Town) -> bytes:
    return json.dumps(
        {"code": town.code, "name": town.name, "prefecture": town.prefecture},
        ensure_ascii=False,
    ).encode()
