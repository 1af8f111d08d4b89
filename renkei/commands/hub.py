"""`renkei hub`: run the hub (cloud centre) web process.

The operator unseals the hub's key custody at start-up (the passphrase as for `renkei
import`: RENKEI_HUB_PASSPHRASE, the systemd credential `hub-passphrase`, or typed): the
hub then reads the boxes' edits, lists concurrent ones for review, and serves the towns'
logs. A hub whose data folder has no custody file yet, or that is started unattended with
no passphrase at hand, runs as a relay only (and says so).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("hub", help="run the hub (cloud centre) process")
    parser.add_argument("--data", type=Path, required=True, help="the hub's data folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8700, help="port to listen on")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from cloud.app import create_app
    from cloud.custody import CUSTODY_FILE, Custody, CustodyError
    from firmware.notify import run_uvicorn
    from renkei.commands.import_ import hub_passphrase

    custody = None
    if (args.data / CUSTODY_FILE).exists():
        if not _passphrase_available():
            print(
                "警告: 鍵保管のパスフレーズが与えられていません。ハブは中継のみで動きます"
                "（ボックスの編集の反映・競合の一覧はできません）。",
                file=sys.stderr,
            )
        else:
            try:
                custody = Custody.load(args.data, hub_passphrase())
            except CustodyError as exc:
                print(exc, file=sys.stderr)
                return 2
    app = create_app(args.data, custody)
    run_uvicorn(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _passphrase_available() -> bool:
    """An operator can give it: in the environment, as a systemd credential, or typed."""
    import os
    import sys

    credentials = os.environ.get("CREDENTIALS_DIRECTORY", "")
    return bool(
        os.environ.get("RENKEI_HUB_PASSPHRASE")
        or (credentials and (Path(credentials) / "hub-passphrase").exists())
        or sys.stdin.isatty()
    )
