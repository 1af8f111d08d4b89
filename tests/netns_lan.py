"""A LAN of several hosts for tests: one network namespace per host, each joined by a veth
pair to a bridge in a "switch" namespace (multicast flooded, as on an office switch).
Addresses exist only inside these namespaces; everything is removed afterwards — first
the processes a test started in them (the test's job), then the namespaces (here).

tests/netns.py's `namespace_pair` is the two-host version; this one is for more hosts.
Inside every host namespace the LAN interface is called `lan0`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from netns import need, run

LAN_IF = "lan0"


@contextmanager
def lan(prefix: str, hosts: dict[str, str], prefixlen: int = 24) -> Iterator[dict[str, str]]:
    """`hosts` maps a short host name to its IPv4 address; yields name -> namespace."""
    if os.geteuid() != 0:
        pytest.fail("network-namespace tests need root")
    need("ip", "iproute2")
    pid = os.getpid()
    switch = f"{prefix}-sw-{pid}"
    namespaces = {name: f"{prefix}-{name}-{pid}" for name in hosts}
    created: list[str] = []
    try:
        run(["ip", "netns", "add", switch])
        created.append(switch)
        # no IGMP snooping: mDNS (224.0.0.251) reaches every port, as on a plain switch
        run(["ip", "-n", switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])
        run(["ip", "-n", switch, "link", "set", "br0", "up"])
        for index, (name, address) in enumerate(hosts.items()):
            ns = namespaces[name]
            run(["ip", "netns", "add", ns])
            created.append(ns)
            port = f"p{index}-{pid}"[:15]
            # both ends are created inside their namespaces: nothing touches the host's
            run(["ip", "link", "add", LAN_IF, "netns", ns, "type", "veth",
                 "peer", "name", port, "netns", switch])  # fmt: skip
            run(["ip", "-n", switch, "link", "set", port, "master", "br0"])
            run(["ip", "-n", switch, "link", "set", port, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{address}/{prefixlen}", "dev", LAN_IF])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", LAN_IF, "up"])
        yield namespaces
    finally:
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not any(ns in left for ns in created), left


def in_ns(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]
