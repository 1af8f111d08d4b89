"""Capability: D-Bus system bus + avahi-daemon (mDNS/DNS-SD) on loopback.

scripts/services.sh starts avahi-daemon with allow-interfaces=lo, so every
mDNS packet here stays on loopback.

avahi-daemon and python-zeroconf coexist on this machine: both bind
0.0.0.0:5353 with SO_REUSEADDR/SO_REUSEPORT, and each sees the other's
announcements (checked below).  python-zeroconf MUST be given
``interfaces=["127.0.0.1"]`` in tests - its default (all interfaces) would
multicast on the real NIC.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

SERVICE_TYPE = "_renkeitest._tcp"


def _browse_until(
    sh: Callable[..., subprocess.CompletedProcess[str]],
    name: str,
    port: int,
    timeout: float = 20,
) -> str:
    """Run ``avahi-browse -rtp`` until a resolved ('=') record for name:port shows up."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        proc = sh(["avahi-browse", "-rtp", SERVICE_TYPE], timeout=15)
        out = proc.stdout + proc.stderr
        for line in proc.stdout.splitlines():
            fields = line.split(";")
            # =;iface;proto;name;type;domain;host;address;port;txt
            if (
                len(fields) >= 9
                and fields[0] == "="
                and fields[3] == name
                and fields[8] == str(port)
            ):
                return line
        time.sleep(0.3)
    pytest.fail(
        f"service {name!r} port {port} not seen by avahi-browse in {timeout}s:\n{out}",
        pytrace=False,
    )


@pytest.mark.capability
def test_avahi_publish_and_browse(
    system_services: None,
    need: Callable[[str, str], str],
    sh: Callable[..., subprocess.CompletedProcess[str]],
    check: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    need("avahi-publish", "avahi-utils")
    need("avahi-browse", "avahi-utils")
    check(["avahi-daemon", "-c"])  # fails if the daemon is not running
    name = f"renkei-cap-{os.getpid()}"
    port = 40000 + os.getpid() % 20000
    publisher = subprocess.Popen(
        ["avahi-publish", "-s", name, SERVICE_TYPE, str(port), f"pid={os.getpid()}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        line = _browse_until(sh, name, port)
        fields = line.split(";")
        assert fields[1] == "lo", f"mDNS must stay on loopback, got interface {fields[1]!r}"
        assert fields[7] == "127.0.0.1", line
        assert f'"pid={os.getpid()}"' in fields[9], line
    finally:
        publisher.terminate()
        try:
            publisher.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.communicate(timeout=10)


@pytest.mark.capability
def test_zeroconf_coexists_with_avahi(
    system_services: None,
    need: Callable[[str, str], str],
    need_module: Callable[[str, str], object],
    sh: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """A python-zeroconf registration (as the product uses) is seen by avahi."""
    need("avahi-browse", "avahi-utils")
    need_module("zeroconf", "zeroconf")
    from zeroconf import IPVersion, ServiceInfo, Zeroconf

    name = f"renkei-zc-{os.getpid()}"
    port = 40000 + (os.getpid() + 1) % 20000
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        info = ServiceInfo(
            f"{SERVICE_TYPE}.local.",
            f"{name}.{SERVICE_TYPE}.local.",
            addresses=[socket.inet_aton("127.0.0.1")],
            port=port,
            properties={"pid": str(os.getpid())},
            server=f"renkei-zc-{os.getpid()}.local.",
        )
        zc.register_service(info)
        try:
            line = _browse_until(sh, name, port)
            assert line.split(";")[7] == "127.0.0.1", line
        finally:
            zc.unregister_service(info)
    finally:
        zc.close()
