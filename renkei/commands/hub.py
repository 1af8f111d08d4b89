"""`renkei hub`: run the hub (cloud centre) web process."""

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
    from cloud.app import create_app
    from firmware.notify import run_uvicorn

    run_uvicorn(create_app(args.data), host=args.host, port=args.port, log_level="warning")
    return 0
