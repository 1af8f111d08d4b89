"""`renkei box`: run an edge box's web process (HTTPS when given its TLS folder)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.registry import DEFAULT_SHARDS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("box", help="run an edge box process")
    parser.add_argument("--hub", required=True, help="the hub's URL, e.g. http://127.0.0.1:8700")
    parser.add_argument("--town", required=True, help="the box's own town code, e.g. 15307")
    parser.add_argument("--data", type=Path, required=True, help="the box's data folder")
    parser.add_argument(
        "--tls", type=Path, help="folder with server.crt and server.key (serves HTTPS)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8701, help="port to listen on")
    parser.add_argument(
        "--discover", action="append", default=[], metavar="ADDRESS",
        help="advertise and look for boxes and printers (mDNS) on this LAN address "
        "(repeatable; off by default, never on loopback in production)",
    )  # fmt: skip
    parser.add_argument(
        "--drill", action="store_true",
        help="training mode (訓練モード): synthetic drill data only, every copy a 見本 in the "
        "D number series, a banner on every screen; /api/health says \"mode\": \"drill\"",
    )  # fmt: skip
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.app import BoxConfig, create_app
    from edge.enrolment import enrolled_box_id
    from edge.tls import ssl_kwargs
    from firmware.notify import run_uvicorn
    from shared import migrations

    migrations.apply(args.data / "replica.db", "box")  # the schema this version knows
    config = BoxConfig(
        args.hub,
        args.town,
        args.data,
        shards=args.shards,
        box_id=enrolled_box_id(args.data),  # the name it was enrolled under, if enrolled
        discovery_interfaces=tuple(args.discover),
        drill=args.drill,
    )
    tls = ssl_kwargs(args.tls) if args.tls else {}
    # Under systemd (Type=notify) this says READY=1 once listening and pings the watchdog.
    run_uvicorn(create_app(config), host=args.host, port=args.port, log_level="warning", **tls)
    return 0
