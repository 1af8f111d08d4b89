"""`renkei reconcile TOWN`: the reconciliation report after recovery.

    renkei reconcile 15307 --store registers.sqlite --export /srv/export/day2
    renkei reconcile 15307 --store registers.sqlite --export DIR --json > report.json

Reads the town's issuance registers (交付 register, voided numbers, 用紙受払簿, cash
counts, intake) from a SQLite file in the storage seam's layout (`SqliteStorage`), and
the core system's new export of the town (the folder `DIR/TOWN/`, or `DIR` itself if it
holds `town.json`), then lists what `shared.issuance.reconcile` finds.

The store must hold the registers in plaintext: the hub's data folder, or a copy written
by a clerk's session. A box's own store is sealed to the town and cannot be read here —
this command holds no keys and asks for none.

Exit codes: 0 report written (clean or not, unless --strict), 3 with --strict when
anything needs attention, 1 when the inputs cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="after recovery: list documents issued from data later proved wrong, "
        "intake to process, fees against cash and paper against the register",
        description="Reconcile a town's issuance registers against the core system's new "
        "export: certificates issued from data that a later change, death or 支援措置 made "
        "wrong (with whom to contact), intake still to process, fees against counted cash, "
        "and paper used against the 交付 register.",
    )
    parser.add_argument("town", metavar="TOWN", help="town code, e.g. 15307")
    parser.add_argument(
        "--store",
        type=Path,
        required=True,
        metavar="SQLITE",
        help="SQLite file holding the town's registers in plaintext (SqliteStorage layout)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        required=True,
        metavar="DIR",
        help="the core system's export after recovery: a root with TOWN/ or the town folder",
    )
    parser.add_argument(
        "--at",
        default=None,
        metavar="ISO",
        help="time the report is made as of, with time zone (default: now)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 3 when anything needs attention",
    )
    parser.set_defaults(func=run)


def _town_folder(export: Path, town: str) -> Path:
    return export if (export / "town.json").is_file() else export / town


def run(args: argparse.Namespace) -> int:
    from shared.export_csv import ExportError, read_town
    from shared.issuance.codec import encode
    from shared.issuance.context import JST
    from shared.issuance.data import TownData
    from shared.issuance.errors import IssuanceError
    from shared.issuance.reconcile import reconcile_store, render
    from shared.storage import SqliteStorage

    try:
        now = datetime.fromisoformat(args.at) if args.at else datetime.now(JST)
    except ValueError:
        print(f"renkei reconcile: --at must be ISO 8601, got {args.at!r}", file=sys.stderr)
        return 1
    if now.tzinfo is None:
        print("renkei reconcile: --at needs a time zone, e.g. +09:00", file=sys.stderr)
        return 1
    if not args.store.is_file():
        print(f"renkei reconcile: no register store at {args.store}", file=sys.stderr)
        return 1
    folder = _town_folder(args.export, args.town)
    try:
        export = read_town(folder)
    except (ExportError, OSError) as exc:
        print(f"renkei reconcile: cannot read the export {folder}: {exc}", file=sys.stderr)
        return 1
    if export.town.code != args.town:
        print(
            f"renkei reconcile: {folder} is town {export.town.code}, not {args.town}",
            file=sys.stderr,
        )
        return 1
    store = SqliteStorage(args.store)
    try:
        report = reconcile_store(store, TownData.from_export(export), now)
    except IssuanceError as exc:
        print(f"renkei reconcile: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        data = encode(report) | {"clean": report.clean}
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(render(report))
    return 3 if args.strict and not report.clean else 0
