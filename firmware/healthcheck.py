"""The box's and the hub's health probe: `python -m firmware.healthcheck URL`.

Used by the container HEALTHCHECKs, by the update installer after switching versions
(`renkei update install --health-url`), and by the debootstrap test. Exit status 0 when
`GET URL` answers 200 with JSON `{"status": "ok", ...}`, 1 otherwise; one line on stderr
says why. Standard library only, so it runs before anything else is importable.

TLS: `--cafile` verifies the box's certificate against the federation CA. Without it, a
loopback URL (127.0.0.1, ::1, localhost) is probed without verification — the probe sends
nothing secret and reads only the status — and any other host is verified against the
system's trust store.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _context(url: str, cafile: str | None) -> ssl.SSLContext | None:
    parts = urlsplit(url)
    if parts.scheme != "https":
        return None
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if parts.hostname in LOOPBACK:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context()


def probe(url: str, cafile: str | None = None, timeout: float = 5.0) -> str | None:
    """None when healthy, else a one-line reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_context(url, cafile)) as r:
            body = r.read(65536)
            status = r.status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url}: {exc}"
    if status != 200:
        return f"{url}: HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return f"{url}: not JSON"
    if not isinstance(data, dict) or data.get("status") != "ok":
        return f"{url}: status is {data.get('status') if isinstance(data, dict) else data!r}"
    return None


def check(url: str, cafile: str | None = None, timeout: float = 5.0) -> bool:
    return probe(url, cafile, timeout) is None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware.healthcheck", description="Probe a Renkei health URL."
    )
    parser.add_argument("url", help="e.g. https://127.0.0.1:443/api/health")
    parser.add_argument("--cafile", help="federation CA certificate to verify the box against")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)
    reason = probe(args.url, args.cafile, args.timeout)
    if reason:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
