"""renkei/netns.py on its own: a LAN of namespaces, a host unplugged and cabled straight
into another's namespace (the drill's portable node), a private /24 no route of the
machine covers, and nothing left after close. Needs root, as the other LAN tests."""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from renkei import netns

ADDR = {"a": "10.231.250.11", "b": "10.231.250.12", "l": "10.231.250.21"}


@pytest.fixture
def made() -> Iterator[netns.Lan]:
    if os.geteuid() != 0 or netns.unavailable():
        pytest.fail(f"network-namespace tests need root: {netns.unavailable()}")
    lan = netns.Lan.create("rkt", ADDR, root_address="10.231.250.1")
    try:
        yield lan
    finally:
        lan.close()
    assert lan.leftovers() == []


def _reaches(lan: netns.Lan, host: str, address: str) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, 8000), timeout=2)"
    done = subprocess.run(lan.exec(host, sys.executable, "-c", probe), capture_output=True,
                          timeout=30, check=False)  # fmt: skip
    return done.returncode == 0


def _serve(lan: netns.Lan, host: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        lan.exec(host, sys.executable, "-m", "http.server", "--bind", ADDR[host], "8000"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _reaches(lan, host, ADDR[host]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return server


def test_a_host_cabled_into_another_namespace_reaches_that_host_only(made: netns.Lan) -> None:
    servers = [_serve(made, "a"), _serve(made, "b")]
    try:
        assert _reaches(made, "l", ADDR["a"]) and _reaches(made, "l", ADDR["b"])  # on the LAN
        made.unplug("l")
        assert not _reaches(made, "l", ADDR["b"])  # cable pulled: nothing
        made.cable("l", "b")
        assert _reaches(made, "l", ADDR["b"])
        assert not _reaches(made, "l", ADDR["a"]) and not _reaches(made, "l", "10.231.250.1")
        assert _reaches(made, "a", ADDR["b"])  # the others' LAN is as it was
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_the_lan_is_gone_after_close_even_with_processes_left_inside(made: netns.Lan) -> None:
    left = subprocess.Popen(made.exec("a", "sleep", "600"))
    made.close()
    assert made.leftovers() == []
    assert left.wait(timeout=30) != 0  # killed with its namespace
    assert made.root_link not in netns.links()


def test_the_subnet_chosen_overlaps_no_address_or_route_of_the_machine() -> None:
    subnet = netns.free_subnet("10.231.0.0/16", random.Random(1))
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert str(subnet.network_address) not in routes and subnet.is_private
    own = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout.split()  # fmt: skip
    address = next((w for w in own if "/" in w and not w.startswith("10.231.")), "")
    if address and ipaddress.ip_network(address, strict=False).prefixlen >= 24:
        with pytest.raises(netns.NetnsError):  # a base the machine's own network fills
            netns.free_subnet(str(ipaddress.ip_network(address, strict=False)))
