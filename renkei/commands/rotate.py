"""`renkei rotate`: start a new key epoch for a town at the hub (lost box, revoked clerk).

Every clerk not revoked receives the new keys sealed to their own public key (no one's
password is needed); the documents are compacted: sealed afresh under the new epoch. The
lost-box procedure in docs/operations.md runs this after revoking the box. Revocation
protects only what is written from now on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rotate", help="start a new key epoch for a town and re-seal its documents"
    )
    parser.add_argument("--data", type=Path, required=True, help="the hub's data folder")
    parser.add_argument("--town", required=True, help="the town's code, e.g. 15307")
    parser.add_argument(
        "--revoke", action="append", default=[], metavar="LOGIN_ID",
        help="a clerk whose access ends with this rotation (repeatable)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cloud.app import hub_db_path
    from cloud.custody import Custody, CustodyError, rotate_town
    from cloud.replica import HubReplica
    from renkei.commands.import_ import hub_passphrase
    from shared.storage import SqliteStorage

    passphrase = hub_passphrase()
    try:
        custody = Custody.load(args.data, passphrase)
    except CustodyError as exc:
        print(exc, file=sys.stderr)
        return 2
    storage = SqliteStorage(hub_db_path(args.data))
    try:
        new = rotate_town(custody, storage, args.town, frozenset(args.revoke))
        custody.save(args.data, passphrase)
        HubReplica(storage, custody).compact(args.town)
    finally:
        storage.close()
    print(f"{args.town}: 鍵を第{new.epoch}世代に更新し、文書を再封緘しました。"
          f"失効: {', '.join(args.revoke) or 'なし'}")
    return 0
