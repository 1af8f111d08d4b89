"""A LAN of network namespaces, for the drill's federation and the network tests: one
namespace per host, each joined by a veth pair to a bridge in a "switch" namespace
(multicast flooded, as on an office switch), and — when the creating process must reach
the hosts itself — one veth from the switch to the root namespace.

    root ns ── <prefix><pid> ──┐
    <prefix>-<pid>-a ── lan0 ──┼── br0 in <prefix>-<pid>-sw
    <prefix>-<pid>-b ── lan0 ──┘

Addresses exist only inside these namespaces (and on the one root-side veth, in a private
/24 that no route of the machine covers: `free_subnet`). The host namespaces get no
default route, so nothing in them reaches beyond the LAN. `Lan.close` kills whatever still
runs in the namespaces, deletes the root veth and the namespaces, and checks that none is
left; it is idempotent and also registered with atexit. Namespaces and root veths of an
earlier process with the same prefix that died without closing (SIGKILL) are removed by
`sweep` — only when that process is gone.

Inside every host namespace the LAN interface is `lan0`. Needs root and iproute2
(`available` says why not). Errors: `NetnsError` (an `ip` command failed, or something
was left behind).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

LAN_IF = "lan0"


class NetnsError(Exception):
    """Network namespaces could not be set up or removed."""


def ip(*args: str, timeout: float = 30) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str:
    """Why network namespaces cannot be used here ("" when they can): a probe namespace
    is created and deleted."""
    if os.geteuid() != 0:
        return "ネットワーク名前空間には root 権限が必要です"
    if shutil.which("ip") is None:
        return "ip コマンドがありません（iproute2）"
    probe = f"rkprobe-{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"ネットワーク名前空間を作れません: {exc}"
    with contextlib.suppress(NetnsError, subprocess.TimeoutExpired):
        ip("netns", "del", probe)
    return ""


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def links() -> list[str]:
    """Interface names of the root namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=False)  # fmt: skip
    return [m.group(1) for m in re.finditer(r"^\d+: ([^:@\s]+)", out.stdout, re.MULTILINE)]


def free_subnet(
    base: str = "10.231.0.0/16", rng: random.Random | None = None
) -> ipaddress.IPv4Network:
    """A /24 inside `base` that no address or route of the root namespace overlaps."""
    used: list[ipaddress.IPv4Network] = []
    for text in (ip("-4", "-o", "addr", "show"), ip("-4", "route", "show")):
        for found in re.findall(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", text):
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(found, strict=False))
    candidates = list(ipaddress.IPv4Network(base).subnets(new_prefix=24))
    (rng or random.Random()).shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(u) for u in used if u.prefixlen > 0):
            return subnet
    raise NetnsError(f"{base} に空いている /24 がありません")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(namespace: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True,
                         check=False)  # fmt: skip
    for pid in out.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def sweep(prefix: str) -> list[str]:
    """Remove the namespaces and root veths `<prefix>-<pid>-…` / `<prefix><pid>` of
    processes that are gone (a drill killed with SIGKILL cannot clean up)."""
    removed = []
    # the root veths first: deleting a switch namespace takes its peer (and it) along
    for link in links():
        found = re.fullmatch(rf"{re.escape(prefix)}(\d+)", link)
        if found and not _alive(int(found.group(1))):
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
            removed.append(link)
    for namespace in namespaces():
        found = re.fullmatch(rf"{re.escape(prefix)}-(\d+)-.+", namespace)
        if found and not _alive(int(found.group(1))):
            _kill_inside(namespace)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
            removed.append(namespace)
    return removed


@dataclass
class Lan:
    """Host namespaces on one bridge. Build with `Lan.create`; `exec(host, …)` is the
    command line that runs a program inside a host's namespace."""

    prefix: str
    namespaces: dict[str, str] = field(default_factory=dict)  # host name → namespace
    addresses: dict[str, str] = field(default_factory=dict)  # host name → IPv4 address
    switch: str = ""
    root_link: str = ""  # the root namespace's veth, if the creator joined the LAN
    root_address: str = ""
    created: list[str] = field(default_factory=list)
    closed: bool = False

    @classmethod
    def create(
        cls, prefix: str, hosts: dict[str, str], *, prefixlen: int = 24, root_address: str = ""
    ) -> Lan:
        """`hosts` maps a short host name to its IPv4 address; with `root_address` the
        calling process's namespace joins the LAN at that address."""
        pid = os.getpid()
        lan = cls(prefix)
        atexit.register(lan.close)
        try:
            lan.switch = f"{prefix}-{pid}-sw"
            lan._add_namespace(lan.switch)
            # no IGMP snooping: mDNS (224.0.0.251) reaches every port, as on a plain switch
            ip("-n", lan.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            ip("-n", lan.switch, "link", "set", "br0", "up")
            for index, (name, address) in enumerate(hosts.items()):
                namespace = f"{prefix}-{pid}-{name}"
                lan._add_namespace(namespace)
                lan.namespaces[name] = namespace
                lan.addresses[name] = address
                # both ends are created inside their namespaces: nothing touches the host's
                lan._plug(f"p{index}", ["netns", namespace], LAN_IF)
                ip("-n", namespace, "addr", "add", f"{address}/{prefixlen}", "dev", LAN_IF)
                ip("-n", namespace, "link", "set", "lo", "up")
                ip("-n", namespace, "link", "set", LAN_IF, "up")
            if root_address:
                lan.root_link = f"{prefix}{pid}"[:15]
                lan.root_address = root_address
                lan._plug("p-root", [], lan.root_link)
                ip("addr", "add", f"{root_address}/{prefixlen}", "dev", lan.root_link)
                ip("link", "set", lan.root_link, "up")
        except BaseException:
            lan.close()
            raise
        return lan

    def _add_namespace(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self.created.append(namespace)

    def _plug(self, port: str, where: list[str], name: str) -> None:
        """A veth from a bridge port in the switch to `name` (in `where`'s namespace)."""
        ip("link", "add", name, *where, "type", "veth", "peer", "name", port,
           "netns", self.switch)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", "br0")
        ip("-n", self.switch, "link", "set", port, "up")

    def unplug(self, host: str) -> None:
        """Pull a host's cable: its `lan0` goes (with the other end, wherever it was)."""
        ip("-n", self.namespaces[host], "link", "del", LAN_IF)

    def cable(self, host: str, into: str) -> str:
        """Plug an unplugged host straight into another host's namespace (a laptop into a
        town hall's LAN): a veth from its `lan0` keeping its address, the other end
        routed to it there; the host reaches only `into`'s own address. Returns the
        name of the end in `into`."""
        namespace, there = self.namespaces[host], self.namespaces[into]
        end = f"c-{host}"[:15]
        ip("link", "add", LAN_IF, "netns", namespace, "type", "veth", "peer", "name", end,
           "netns", there)  # fmt: skip
        ip("-n", namespace, "addr", "add", f"{self.addresses[host]}/32", "dev", LAN_IF)
        ip("-n", namespace, "link", "set", LAN_IF, "up")
        ip("-n", namespace, "route", "add", f"{self.addresses[into]}/32", "dev", LAN_IF)
        ip("-n", there, "link", "set", end, "up")
        ip("-n", there, "route", "add", f"{self.addresses[host]}/32", "dev", end)
        return end

    def exec(self, host: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[host], *command]

    def leftovers(self) -> list[str]:
        """What of this LAN still exists (namespaces, the root veth)."""
        left = [n for n in namespaces() if n in self.created]
        if self.root_link and self.root_link in links():
            left.append(self.root_link)
        return left

    def close(self) -> None:
        """Kill what still runs inside, delete the root veth and the namespaces."""
        if self.closed:
            return
        self.closed = True
        for namespace in self.created:
            _kill_inside(namespace)
        if self.root_link:
            subprocess.run(["ip", "link", "del", self.root_link], capture_output=True,
                           check=False)  # fmt: skip
        for namespace in reversed(self.created):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        atexit.unregister(self.close)
        left = self.leftovers()
        if left:
            raise NetnsError(f"ネットワーク名前空間が残りました: {left}")


@contextlib.contextmanager
def lan(
    prefix: str, hosts: dict[str, str], *, prefixlen: int = 24, root_address: str = ""
) -> Iterator[Lan]:
    made = Lan.create(prefix, hosts, prefixlen=prefixlen, root_address=root_address)
    try:
        yield made
    finally:
        made.close()
