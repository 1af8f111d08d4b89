"""`renkei verify`: check a certificate's QR payload offline and show what it must say.

    renkei verify 'RK1:...' --town-keys keys.json
    renkei verify --image scan.png --town-keys keys.json

The town public keys are the JSON the hub publishes per town (`TownPublic.to_json()`,
one object or a list; several files may be given). Exit status 0 when the signatures
verify, 1 when they do not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="verify a printed document's signed QR payload offline",
        description="Check the signed QR payload of a Renkei certificate or list: the "
        "issuing town's key certifies the clerk, whose key signed the payload. Prints what "
        "the document must say (kind, 発行番号, time, data as-of, content hash).",
    )
    parser.add_argument(
        "payload",
        nargs="?",
        help="the QR text (starts with RK1:); quote it, Base45 contains spaces",
    )
    parser.add_argument(
        "--image",
        type=Path,
        metavar="PNG",
        help="read the payload from a scanned image with zbarimg (Debian zbar-tools)",
    )
    parser.add_argument(
        "--town-keys",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="JSON file of town public keys (TownPublic objects); repeat for several",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def read_qr(image: Path) -> list[str]:
    """Every QR payload zbarimg finds in an image (raw, one per line)."""
    exe = shutil.which("zbarimg")
    if exe is None:
        raise RuntimeError("zbarimg not found: install Debian package zbar-tools")
    proc = subprocess.run(
        [exe, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode not in (0, 4):  # 4: no symbol found
        raise RuntimeError(f"zbarimg failed: {proc.stderr.strip()}")
    return [line for line in proc.stdout.splitlines() if line.strip()]


def load_town_keys(paths: list[Path]) -> dict[tuple[str, int], Any]:
    from shared.crypto import TownPublic

    keys: dict[tuple[str, int], TownPublic] = {}
    for path in paths:
        data = json.loads(path.read_text())
        for item in data if isinstance(data, list) else [data]:
            public = TownPublic.from_json(item)
            keys[(public.town, public.epoch)] = public
    return keys


def run(args: argparse.Namespace) -> int:
    from printing.errors import PayloadError
    from printing.qr import verify_payload

    if (args.payload is None) == (args.image is None):
        print("renkei verify: give either PAYLOAD or --image PNG", file=sys.stderr)
        return 2
    try:
        keys = load_town_keys(args.town_keys)
    except (OSError, ValueError) as exc:
        print(f"renkei verify: cannot read town keys: {exc}", file=sys.stderr)
        return 2
    if args.image is not None:
        try:
            payloads = [p for p in read_qr(args.image) if p.startswith("RK1:")]
        except (OSError, RuntimeError) as exc:
            print(f"renkei verify: {exc}", file=sys.stderr)
            return 2
        if not payloads:
            print("二次元コードが見つかりません（Renkeiの発行物ではない可能性があります）。")
            return 1
    else:
        payloads = [args.payload]
    status = 0
    for payload in payloads:
        try:
            result = verify_payload(payload, lambda town, epoch: keys.get((town, epoch)))
        except PayloadError as exc:
            status = 1
            if args.json:
                print(json.dumps({"valid": False, "error": str(exc)}, ensure_ascii=False))
            else:
                print(f"無効: {exc.message}\n（詳細: {exc}）")
            continue
        if args.json:
            f = result.fields
            print(
                json.dumps(
                    {
                        "valid": True,
                        "kind": f.kind.name,
                        "town": f.town_code,
                        "issue_number": f.issue_number,
                        "issued_at": f.issued_at.isoformat(),
                        "data_as_of": f.data_as_of.isoformat(),
                        "pages": f.pages,
                        "subject": f.subject,
                        "content_digest": f.content_digest.hex(),
                        "audit_head": f.audit_head.hex(),
                        "clerk": result.clerk.login_id,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print("\n".join(result.summary_lines()))
    return status
