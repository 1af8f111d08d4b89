"""`renkei migrate status|up|down`: the schema of the box's and hub's stores
(shared/migrations.py). `renkei box` and `renkei hub` apply `up` at start; `renkei update
rollback` runs `down` to the previous version's schema itself. By hand, for IT staff:

    renkei migrate status --data /var/lib/renkei/box
    renkei migrate down --data /var/lib/renkei/box --to 1     (service stopped first)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("migrate", help="show, apply or undo store schema migrations")
    actions = parser.add_subparsers(
        dest="migrate_action", metavar="ACTION", required=True, help="status, up or down"
    )
    for name, text in (
        ("status", "list the migrations recorded in each store"),
        ("up", "apply every migration this version knows"),
        ("down", "undo migrations above --to, with the down steps recorded in the store"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--data",
            type=Path,
            action="append",
            required=True,
            help="a data folder holding replica.db or hub.db (repeatable)",
        )
        if name == "down":
            action.add_argument(
                "--to",
                type=int,
                required=True,
                help="the schema version to return to (1 = baseline)",
            )
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from shared import migrations

    stores = migrations.stores_in(args.data)
    if not stores:
        print("データがありません（replica.db / hub.db）。", file=sys.stderr)
        return 2
    try:
        for store in stores:
            if args.migrate_action == "up":
                done = migrations.apply(store)
                print(f"{store}: 適用 {done or 'なし'}")
            elif args.migrate_action == "down":
                done = migrations.rollback(store, args.to)
                print(f"{store}: 取消 {done or 'なし'}")
            else:
                for applied in migrations.status(store):
                    print(f"{store}\t{applied.version}\t{applied.name}\t{applied.applied_by}")
    except migrations.MigrationError as exc:
        print(f"スキーマの移行に失敗しました（変更は取り消されました）: {exc}", file=sys.stderr)
        return 1
    return 0
