"""`renkei enroll`: enrol this box with the hub using a one-time token (edge/enrolment.py).

Run by first boot (firmware/image/firstboot.sh) as the renkei user, or by IT staff at the
console. On success it prints one JSON object {"town", "box_id", "certificate_expires",
"hub_writer"} on stdout and exits 0; otherwise it exits 1 with the reason on stderr in
Japanese and English, having changed nothing the box relies on (2: usage error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "enroll", help="enrol this box with the hub using a one-time token (登録)"
    )
    parser.add_argument("--hub", required=True, help="the hub's URL, e.g. https://hub.renkei.lan")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="the one-time enrolment token from the hub operator")
    token.add_argument(
        "--token-file",
        type=Path,
        help="read the token from this file (a RENKEI_TOKEN=… line or the token alone; "
        "'-' reads standard input)",
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="the box's data folder (as for renkei box --data)"
    )
    parser.add_argument(
        "--tls",
        type=Path,
        help="the box's TLS folder: install server.crt/server.key there "
        "(required to be present after enrolment when given)",
    )
    parser.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        help="folder with ceremony-issued server.crt, server.key and "
        "federation-ca.crt (the USB stick)",
    )
    parser.add_argument(
        "--root",
        help="the federation root's verify key (64 hex digits or a file; "
        "default /etc/renkei/federation-root.pub)",
    )
    parser.add_argument(
        "--ca",
        type=Path,
        help="the federation TLS CA certificate (default "
        "/etc/renkei/federation-ca.crt when present)",
    )
    parser.add_argument(
        "--renew",
        action="store_true",
        help="renew this enrolled box's certificate before it expires (no "
        "token: the current certificate and keys are the credential)",
    )
    parser.set_defaults(func=run)


def _read_token(args: argparse.Namespace) -> str:
    if args.token is not None:
        return str(args.token)
    text = sys.stdin.read() if str(args.token_file) == "-" else args.token_file.read_text()
    for line in text.splitlines():
        if line.startswith("RENKEI_TOKEN="):
            return line.split("=", 1)[1].strip()
    return text.strip()


def run(args: argparse.Namespace) -> int:
    from edge.enrolment import DEFAULT_CA_FILE, EnrolError, enrol, load_root, renew

    if args.renew == (args.token is not None or args.token_file is not None):
        print(
            "--token / --token-file か --renew のどちらか一方を指定してください "
            "(give a token, or --renew)",
            file=sys.stderr,
        )
        return 2
    try:
        root = load_root(args.root)
        ca = args.ca or (DEFAULT_CA_FILE if DEFAULT_CA_FILE.is_file() else None)
        if ca is None and args.from_dir and (args.from_dir / "federation-ca.crt").is_file():
            ca = args.from_dir / "federation-ca.crt"
        if args.renew:
            print(
                json.dumps(
                    renew(args.hub, args.data, root=root, ca_file=ca).to_json(), ensure_ascii=False
                )
            )
            return 0
        token = _read_token(args)
        result = enrol(
            args.hub,
            token,
            args.data,
            root=root,
            tls_dir=args.tls,
            from_dir=args.from_dir,
            ca_file=ca,
        )
    except EnrolError as exc:
        print(
            f"登録できませんでした: {exc.message}\n(enrolment failed: {exc.english})",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"登録できませんでした: ファイルを読み書きできません ({exc})", file=sys.stderr)
        return 1
    print(json.dumps(result.to_json(), ensure_ascii=False))
    return 0
