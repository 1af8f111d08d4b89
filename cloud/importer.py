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
written, so a day's import is a small delta. When the core system did change a field a
box had also edited since, the import's value is written and the case is listed for
review at the hub (`HubReplica.review_items`, kind "import") — never silently.

Where the deltas go: into the hub's sync log, sealed to the town under the hub's writer
key, each table's deltas and its import state in one transaction (`HubReplica.publish`).
That log is the only way documents reach the boxes. After each town, the hub signs the
town's "newest data as of" statement (the export's time) and, when enough history has
piled up or the town's key was rotated, compacts the town (`HubReplica.compact`). A
town that keeps 個人番号 out of its partners' replicas gets its partner copy brought in
step too (`cloud.partner`), with its own statement and compaction.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.custody import Custody, partner_copy_marker
from cloud.partner import has_partner_copy, mirror
from cloud.replica import HubReplica, review_item, sealed_review
from cloud.store import TownStore, towns_entry
from cloud.sync_api import SCOPES_KEY, separate_towns
from shared import export_csv, model
from shared.export_csv import ExportError, ExportFormatError, town_json
from shared.model import TownExport
from shared.records import Record, TownSettings, record_id, to_record
from shared.registry import DEFAULT_SHARDS, Change, Delete, TownRegistry, Upsert
from shared.storage import Storage, StorageKey
from shared.sync.scopes import partner_scope

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
    reviews: int = 0  # fields the import overwrote that a box had edited (listed)
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


def _overwritten(
    registry: TownRegistry, changes: Iterable[Change], table: str, now: float
) -> list[dict[str, Any]]:
    """Review items for the fields this import changes that a box changed since the
    previous import (the document no longer holds the previously imported value)."""
    items = []
    for change in changes:
        old = change.previous if isinstance(change, Upsert) else change.full
        if old is None:
            continue
        name = registry.document_name(table, change.record_id, old)
        document = registry.documents.get(name)
        current = None if document is None else document.get(table, change.record_id)
        if current is None:
            continue
        edited: dict[str, tuple[Any, Any]]
        if isinstance(change, Delete):
            edited = {} if current == old else {"*": (None, current)}
        else:
            edited = {
                f: (value, current.get(f))
                for f, value in change.fields.items()
                if current.get(f) != old.get(f) and current.get(f) != value
            }
        for field_name, (imported, at_box) in sorted(edited.items()):
            items.append(
                review_item(
                    registry.town_code, name, table, change.record_id, field_name, "import",
                    imported if field_name != "*" else None,
                    [
                        {"writer": "import", "seq": 0, "value": imported},
                        {"writer": "", "seq": 0, "value": at_box},
                    ],
                    now,
                )
            )  # fmt: skip
    return items


def _import_table(
    hub: HubReplica,
    store: TownStore,
    table: str,
    objects: Iterable[object],
    result: TableResult,
) -> set[str]:
    """Import one table; returns the names of the documents it changed."""
    registry = hub.registry(store.town_code)
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
    reviews = _overwritten(registry, changes, table, hub.clock())
    result.reviews = len(reviews)
    sealed_reviews = []
    if reviews:  # the values are sealed to the town: no personal data in the hub's db
        public = hub.town_public(store.town_code)
        sealed_reviews = [
            (("hub", "review", store.town_code, item["id"]), sealed_review(item, public))
            for item in reviews
        ]
    deltas = registry.apply(changes, message=f"import {table}")
    result.delta_bytes = sum(len(d) for d in deltas.values())
    extra = [
        store.import_entry(table, current),
        *sealed_reviews,
    ]
    hub.publish(store.town_code, deltas, extra=extra)
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
    *,
    compact: bool = True,
) -> ImportReport:
    """Import every town folder under `root` (one folder per town code) into the hub's
    sync log; `custody` holds the towns' keys and the hub's writer key (required)."""
    if custody is None:
        raise ValueError("the import writes sealed blobs: it needs the hub's custody")
    report = ImportReport()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not folders:
        report.errors.append(f"{root}: 町村のフォルダ（団体コード名）が見つかりません")
        return report
    hub = HubReplica(storage, custody, shards=shards)
    towns: list[tuple[TownStore, export_csv.TownFiles]] = []
    for folder in folders:
        try:
            files = export_csv.open_town(folder)
        except ExportError as exc:
            report.errors.append(str(exc))
            continue
        code = files.town.code
        store = TownStore(storage, code)
        option: list[tuple[StorageKey, bytes]] = []
        if code in partner_without_my_number:
            separate = {**separate_towns(storage), code: partner_scope(code)}
            option = [
                (partner_copy_marker(code), b"1"),
                (SCOPES_KEY, json.dumps(separate, sort_keys=True).encode()),
            ]
        storage.save_many([towns_entry(storage, code), hub.public_entry(code), *option])
        hub.migrate_legacy(code)
        towns.append((store, files))

    def run(store: TownStore, table: str, get: Any) -> None:
        result = TableResult(store.town_code, table)
        report.results.append(result)
        try:
            objects = get()
            if isinstance(objects, ExportError):
                raise objects
            _import_table(hub, store, table, objects, result)
        except ExportError as exc:
            result.error = str(exc)

    # The 支援措置 of every town land before anything else of any town: each is its own
    # blob, and sync sends the `blocks` documents first.
    for store, files in towns:
        run(store, "support_blocks", lambda f=files: f.parse("support_blocks"))
    for store, files in towns:
        run(store, "town", lambda f=files: _town_settings(f))
        parsed = _parse_checked(files)
        for table in TABLE_ORDER[1:]:
            run(store, table, lambda v=parsed[table]: v)
        code = store.town_code
        storage.save_many(
            [
                towns_entry(storage, code),
                ((code, "town"), _town_summary(files.town)),
                ((code, "as-of"), files.exported_at.encode()),
            ]
        )
        scopes = [code]
        if has_partner_copy(storage, code):
            mirror(hub, code)
            scopes.append(partner_scope(code))
        for scope in scopes:
            hub.announce_as_of(scope, files.exported_at)
            if compact and hub.compaction_due(scope):
                hub.compact(scope)
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
