"""`renkei import`: validate the core system's export and import it into the hub's store.

The hub's custody of the towns' keys is unsealed with the operator's passphrase, taken
from RENKEI_HUB_PASSPHRASE (or a systemd credential) or asked for on the terminal; every
change is written into the hub's sync log, sealed to its town, which is how it reaches the
boxes (`cloud.importer`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import", help="validate and import a core-system export into the hub's store"
    )
    parser.add_argument("export", type=Path, help="export folder (one sub-folder per town)")
    parser.add_argument(
        "--data", type=Path, default=Path("var/hub"), help="the hub's data folder"
    )
    parser.add_argument(
        "--partner-without-my-number",
        action="append",
        default=[],
        metavar="CODE",
        help="keep this town's 個人番号 out of its partners' replicas (repeatable)",
    )
    parser.set_defaults(func=run)


def hub_passphrase() -> str:
    """The operator's passphrase for the hub's key custody: RENKEI_HUB_PASSPHRASE, a
    systemd credential named `hub-passphrase` (LoadCredentialEncrypted= or
    systemd-ask-password piped in), or typed at the terminal."""
    passphrase = os.environ.get("RENKEI_HUB_PASSPHRASE")
    if passphrase:
        return passphrase
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        path = Path(credentials) / "hub-passphrase"
        if path.exists():
            return path.read_text().strip()
    return getpass.getpass("ハブの鍵保管パスフレーズ: ")


def run(args: argparse.Namespace) -> int:
    from cloud.app import hub_db_path
    from cloud.custody import Custody, CustodyError
    from cloud.importer import import_export
    from shared.storage import SqliteStorage

    if not args.export.is_dir():
        print(f"取込元フォルダがありません: {args.export}", file=sys.stderr)
        return 2
    args.data.mkdir(parents=True, exist_ok=True)
    passphrase = hub_passphrase()
    try:
        custody = Custody.open_or_create(args.data, passphrase)
    except CustodyError as exc:
        print(exc, file=sys.stderr)
        return 2
    storage = SqliteStorage(hub_db_path(args.data))
    try:
        report = import_export(
            args.export,
            storage,
            custody=custody,
            partner_without_my_number=set(args.partner_without_my_number),
        )
        custody.save(args.data, passphrase)
    finally:
        storage.close()
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
