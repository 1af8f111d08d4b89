"""First boot and `renkei enroll` agree: the options firstboot.sh passes are the ones the
command takes, the token goes on stdin (never on a command line `ps` shows), and the data
and TLS folders are the ones renkei-edge.service runs the box with."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from renkei.cli import build_parser

IMAGE = Path(__file__).resolve().parents[2] / "firmware" / "image"
UNITS = Path(__file__).resolve().parents[2] / "firmware" / "units"


def _enroll_call() -> list[str]:
    script = (IMAGE / "firstboot.sh").read_text()
    match = re.search(r'"\$RENKEI" enroll \\\n(.*?)2>"\$ERRORS"', script, re.S)
    assert match, "firstboot.sh no longer calls renkei enroll as expected"
    words = shlex.split(match.group(1).replace("\\\n", " "))
    values = {
        "$HUB": "https://hub.renkei.lan",
        "$DATA/box": "/var/lib/renkei/box",
        "$DATA/tls": "/var/lib/renkei/tls",
        "${FROM_ARGS[@]}": "",
    }
    return [values.get(w, w) for w in words if values.get(w, w)]


def test_firstboot_passes_what_renkei_enroll_takes() -> None:
    args = build_parser().parse_args(["enroll", *_enroll_call(), "--from", "/run/stick"])
    assert args.token is None and str(args.token_file) == "-"  # the token on stdin
    edge = (UNITS / "renkei-edge.service").read_text()
    assert f"--data {args.data}" in edge and f"--tls {args.tls}" in edge
    assert (
        "printf 'RENKEI_TOKEN=%s\\n' \"$TOKEN\" | runuser -u renkei"
        in (IMAGE / "firstboot.sh").read_text()
    )
