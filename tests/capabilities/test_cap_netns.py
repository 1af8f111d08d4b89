"""Capability: network namespaces joined by a veth pair (multi-box tests).

The 10.231.0.0/24 addresses exist ONLY inside the two namespaces this test
creates; nothing is sent outside them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

ADDR_A = "10.231.0.1"
ADDR_B = "10.231.0.2"


@pytest.fixture
def netns_pair(
    need: Callable[[str, str], str],
    sh: Callable[..., subprocess.CompletedProcess[str]],
    check: Callable[..., subprocess.CompletedProcess[str]],
) -> Iterator[tuple[str, str]]:
    need("ip", "iproute2")
    pid = os.getpid()
    ns_a, ns_b = f"rkcap-a-{pid}", f"rkcap-b-{pid}"
    veth_a, veth_b = f"rka{pid}", f"rkb{pid}"  # <= 15 chars (IFNAMSIZ)
    created: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            check(["ip", "netns", "add", ns])
            created.append(ns)
        # Create the veth pair with each end directly inside its namespace, so
        # no interface ever appears in the host's namespace.
        check(
            [
                "ip",
                "link",
                "add",
                veth_a,
                "netns",
                ns_a,
                "type",
                "veth",
                "peer",
                "name",
                veth_b,
                "netns",
                ns_b,
            ]
        )
        for ns, veth, addr in ((ns_a, veth_a, ADDR_A), (ns_b, veth_b, ADDR_B)):
            check(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", veth])
            check(["ip", "-n", ns, "link", "set", "lo", "up"])
            check(["ip", "-n", ns, "link", "set", veth, "up"])
        yield ns_a, ns_b
    finally:
        # Deleting a namespace destroys its veth end, which destroys the peer.
        for ns in created:
            sh(["ip", "netns", "del", ns])
        left = sh(["ip", "netns", "list"]).stdout
        assert ns_a not in left and ns_b not in left, f"namespaces not removed: {left}"


@pytest.mark.capability
def test_netns_veth_ping(
    netns_pair: tuple[str, str],
    need: Callable[[str, str], str],
    check: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    need("ping", "iputils-ping")
    ns_a, ns_b = netns_pair
    out = check(["ip", "netns", "exec", ns_a, "ping", "-c1", "-W2", ADDR_B]).stdout
    assert "1 received" in out, out
    out = check(["ip", "netns", "exec", ns_b, "ping", "-c1", "-W2", ADDR_A]).stdout
    assert "1 received" in out, out
    # The host namespace must not have seen these interfaces at all.
    host_links = check(["ip", "-o", "link"]).stdout
    assert f"rka{os.getpid()}" not in host_links
