"""A LAN of several hosts for tests: one network namespace per host on one bridge
(renkei/netns.py, which the drill's federation uses too). Addresses exist only inside
these namespaces; everything is removed afterwards — first the processes a test started
in them (the test's job; what is left is killed), then the namespaces.

tests/netns.py's `namespace_pair` is the two-host version; this one is for more hosts.
Inside every host namespace the LAN interface is called `lan0`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from netns import need

from renkei import netns
from renkei.netns import LAN_IF

__all__ = ["LAN_IF", "in_ns", "lan"]


@contextmanager
def lan(prefix: str, hosts: dict[str, str], prefixlen: int = 24) -> Iterator[dict[str, str]]:
    """`hosts` maps a short host name to its IPv4 address; yields name -> namespace."""
    if os.geteuid() != 0:
        pytest.fail("network-namespace tests need root")
    need("ip", "iproute2")
    try:
        made = netns.Lan.create(prefix, hosts, prefixlen=prefixlen)
    except netns.NetnsError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield made.namespaces
    finally:
        made.close()


def in_ns(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]
