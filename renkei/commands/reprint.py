"""`renkei reprint`: reproduce an issued document from the copy kept (sealed) on the box.

Run on the box (its data folder): a clerk of the town opens the town's registers with
their usual ID and password (RENKEI_PASSWORD or asked on the terminal); the PDF exactly
as it was issued is written out. Nothing is re-rendered from today's data. The reprint
is audited (kind `reprint`) in a chain of the clerk's own, signed with their key: the
command may run while the box is writing its own chain.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("reprint", help="write out an issued document by its 発行番号")
    parser.add_argument("number", help="the 発行番号, e.g. 20261127-15307-B01-T01-P01-000001")
    parser.add_argument("--data", type=Path, required=True, help="the box's data folder")
    parser.add_argument("--town", required=True, help="the issuing town's code")
    parser.add_argument("--login", required=True, help="your clerk login id")
    parser.add_argument(
        "--box-code",
        default=None,
        help="the code of the box that issued it (default: this data folder's box)",
    )
    parser.add_argument("--out", type=Path, help="output file (default: NUMBER.pdf)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.boxkey import box_code, box_signing_key
    from edge.counter import printed_key, registers_storage
    from edge.replica import BoxReplica, UnlockError
    from shared.storage import SqliteStorage

    password = os.environ.get("RENKEI_PASSWORD") or getpass.getpass("パスワード: ")
    storage = SqliteStorage(args.data / "replica.db")
    try:
        try:
            unlocked = BoxReplica(storage).unlock(args.town, args.login, password)
        except UnlockError as exc:
            print(exc, file=sys.stderr)
            return 2
        registers = registers_storage(
            storage,
            unlocked.keyring,
            args.box_code or box_code(args.data),
            box_signing_key(args.data),
        )
        pdf = registers.load(printed_key(args.town, args.number))
        if pdf is not None:
            _audit(storage, unlocked, args.number)
    finally:
        storage.close()
    if pdf is None:
        print(f"発行番号 {args.number} の控えはこの機器にありません。", file=sys.stderr)
        return 1
    out = args.out or Path(f"{args.number.split(' ')[0]}.pdf")
    out.write_bytes(pdf)
    print(f"{out} に再現しました（{len(pdf)} バイト）。")
    return 0


def _audit(storage: Any, unlocked: Any, number: str) -> None:
    import secrets
    import time

    from shared.audit import AuditKind, AuditLog, AuditWriter

    writer = AuditWriter.for_session(unlocked.clerk_keys, f"reprint-{secrets.token_hex(4)}")
    AuditLog(storage, unlocked.keyring.public).append(
        writer,
        AuditKind.REPRINT,
        {"number": number, "clerk": unlocked.clerk_keys.login_id, "how": "renkei reprint"},
        time.time(),
    )
