"""A two-host LAN for tests: two network namespaces joined by a veth pair, addresses only
inside them, removed afterwards; and a browser HOME whose NSS database trusts a CA, the
way a town's terminal trusts the federation root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as in tests/capabilities/test_cap_chromium.py
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-domain-reliability",
    "--no-pings",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
]


def run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    return proc


def need(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"missing {command!r}: install Debian package {package!r} (scripts/setup.sh)")
    return path


@contextmanager
def namespace_pair(prefix: str, addr_a: str, addr_b: str) -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("network-namespace tests need root")
    need("ip", "iproute2")
    pid = os.getpid()
    ns_a, ns_b = f"{prefix}-a-{pid}", f"{prefix}-b-{pid}"
    veth_a, veth_b = f"{prefix[:4]}a{pid}"[:15], f"{prefix[:4]}b{pid}"[:15]
    created: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            run(["ip", "netns", "add", ns])
            created.append(ns)
        # each veth end is created directly inside its namespace: none touches the host's
        run(["ip", "link", "add", veth_a, "netns", ns_a, "type", "veth",
             "peer", "name", veth_b, "netns", ns_b])  # fmt: skip
        for ns, veth, addr in ((ns_a, veth_a, addr_a), (ns_b, veth_b, addr_b)):
            run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", veth])
            # No IPv6 link-local address: it would appear a moment after the link comes
            # up, and Chromium aborts a page load on it (net::ERR_NETWORK_CHANGED).
            run(["ip", "-n", ns, "link", "set", veth, "addrgenmode", "none"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", veth, "up"])
        yield ns_a, ns_b
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert ns_a not in left and ns_b not in left, left


def nss_home(base: Path, ca_file: Path | None) -> Path:
    """A HOME whose NSS database trusts `ca_file` as a TLS root (none if None)."""
    home = base / ("home-with-ca" if ca_file else "home-without-ca")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = need("certutil", "libnss3-tools")
    run([certutil, "-N", "-d", f"sql:{nssdb}", "--empty-password"])
    if ca_file is not None:
        run([certutil, "-A", "-d", f"sql:{nssdb}", "-n", "Renkei Federation CA",
             "-t", "C,,", "-i", str(ca_file)])  # fmt: skip
    return home
