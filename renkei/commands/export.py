"""`renkei export open`: decrypt an export file written by a box (全住民一覧 CSV, intake
list) with a town clerk's own login.

Export files are sealed to the town (edge/exports.py): they open only with the town's key
ring, which a clerk's usual ID and password unlock on a box's data folder
(RENKEI_PASSWORD or asked on the terminal). The file's signature is checked against the
writing box's key: this box's by default, another box's with --writer-key.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="open export files sealed to a town")
    actions = parser.add_subparsers(dest="export_action", metavar="ACTION", help="what to do")
    opener = actions.add_parser(
        "open",
        help="decrypt an export file (.rkx) with a town clerk's login",
        description="Decrypt an export file sealed to the town, with your clerk ID and "
        "password on a box's data folder; writes the CSV.",
    )
    opener.add_argument("file", type=Path, help="the export file (.rkx)")
    opener.add_argument("--data", type=Path, required=True, help="a box's data folder")
    opener.add_argument("--town", required=True, help="the town's code, e.g. 15307")
    opener.add_argument("--login", required=True, help="your clerk login id")
    opener.add_argument(
        "--writer-key", help="hex Ed25519 verify key of the box that wrote the file "
        "(default: this data folder's box)",
    )  # fmt: skip
    opener.add_argument("--out", type=Path, help="output file (default: FILE without .rkx)")
    opener.set_defaults(func=run_open)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_open(args: argparse.Namespace) -> int:
    from nacl.signing import VerifyKey

    from edge.boxkey import box_signing_key
    from edge.exports import open_export
    from edge.replica import BoxReplica, UnlockError
    from shared.blobs import BlobError
    from shared.storage import SqliteStorage

    password = os.environ.get("RENKEI_PASSWORD") or getpass.getpass("パスワード: ")
    storage = SqliteStorage(args.data / "replica.db")
    try:
        unlocked = BoxReplica(storage).unlock(args.town, args.login, password)
    except UnlockError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        storage.close()
    key = (
        VerifyKey(bytes.fromhex(args.writer_key))
        if args.writer_key
        else box_signing_key(args.data).verify_key
    )
    try:
        document, data = open_export(args.file.read_bytes(), unlocked.keyring, key)
    except (BlobError, ValueError) as exc:
        print(f"このファイルは開けません（別の町・改ざん・書き手の鍵違い）: {exc}", file=sys.stderr)
        return 1
    out = args.out or args.file.with_suffix("")
    out.write_bytes(data)
    print(f"{out} に復号しました（{document.split(chr(31))[-1]}、{len(data)} バイト）。")
    return 0
