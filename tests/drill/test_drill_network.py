"""The drill's federation in network namespaces (renkei/netns.py): the hub and each town
hall in a namespace of its own, reached only at the LAN addresses the drill chose — and
nothing of that LAN left behind, after a normal end, a SIGTERM, or (by the next drill's
sweep) a SIGKILL. Needs root, as the LAN tests in tests/edge do."""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from drill_run import REPO

from renkei import netns
from renkei.drill.federation import NETNS_PREFIX, LocalFederation


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0 or netns.unavailable():
        pytest.fail(f"network-namespace tests need root and iproute2: {netns.unavailable()}")


def _listening(pid: int) -> set[tuple[str, int]]:
    """The TCP listeners of the network namespace a process is in (IPv4)."""
    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            address, port = local.split(":")
            found.add((str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])), int(port, 16)))
    return found


def _existing(names: list[str]) -> list[str]:
    """Which of these namespaces and root-namespace links exist."""
    return [n for n in names if n in netns.namespaces() or n in netns.links()]


def test_every_part_listens_only_at_its_namespace_address_and_the_lan_goes_with_close(
    tmp_path: Path,
) -> None:
    fed = LocalFederation(tmp_path / "fed", short=True, network="netns", say=lambda m: None)
    try:
        fed.prepare()
        fed.start()
        assert fed.network_used == "netns" and fed.lan is not None
        lan = fed.lan
        names = [*lan.created, lan.root_link]
        assert _existing(names) == names  # they exist while the drill runs
        assert lan.root_link in netns.links()
        context = ssl.create_default_context(cafile=fed.ca_file)
        for code, box in fed.boxes.items():
            assert box.address == lan.addresses[code] and box.process is not None
            assert not ipaddress.ip_address(box.address).is_loopback
            found = subprocess.run(["ip", "netns", "identify", str(box.process.pid)],
                                   capture_output=True, text=True, check=True)  # fmt: skip
            assert found.stdout.strip() == lan.namespaces[code]
            nonce = secrets.token_hex(32)
            identity = httpx.get(f"{box.url}/api/identity", params={"nonce": nonce},
                                 verify=context, timeout=30)  # fmt: skip
            assert identity.status_code == 200, identity.text
            assert nonce in identity.text and code in identity.text
            # the box's HTTPS and sync ports: at its LAN address, not on loopback or all
            listeners = _listening(box.process.pid)
            for port in (box.port, box.peer_port):
                assert (box.address, port) in listeners, listeners
                assert ("127.0.0.1", port) not in listeners and ("0.0.0.0", port) not in listeners
            # the line to the hub runs through the drill's proxy on the drill's address
            assert box.proxy.listen_host == lan.root_address
            assert box.printer is not None and box.address in box.printer.uri
        assert fed.hub is not None
        hub_listeners = _listening(fed.hub.pid)
        assert (lan.addresses["hub"], fed.hub_port) in hub_listeners
        assert ("127.0.0.1", fed.hub_port) not in hub_listeners
        assert httpx.get(f"{fed.hub_url}/api/health", timeout=30).status_code == 200
    finally:
        fed.close()
    assert fed.network_summary()["left"] == []
    assert _existing(names) == []


def _drill(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "renkei", "drill", "--profile", "short", "--towns", "15307",
         "--network", "netns", "--json", "--dir", str(tmp_path / "run")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_until_boxes_answer(drill: subprocess.Popen[str], tmp_path: Path) -> list[str]:
    """Until the drill's boxes have started (their logs exist and the LAN is up)."""
    prefix = f"{NETNS_PREFIX}-{drill.pid}-"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert drill.poll() is None, drill.communicate()[1][-3000:]
        mine = [n for n in netns.namespaces() if n.startswith(prefix)]
        # hub, three town halls, the switch, the town's laptop: all made at once
        if len(mine) == 6 and (tmp_path / "run" / "logs" / "box-15581.log").exists():
            return [*mine, f"{NETNS_PREFIX}{drill.pid}"]
        time.sleep(0.5)
    raise AssertionError("the drill's federation did not start")


def _running_from(folder: Path) -> list[str]:
    """Processes whose command line names the drill's folder (hub, boxes, printers)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in text:
            found.append(text)
    return found


def test_a_drill_stopped_with_sigterm_removes_its_processes_and_namespaces(
    tmp_path: Path,
) -> None:
    drill = _drill(tmp_path)
    try:
        names = _wait_until_boxes_answer(drill, tmp_path)
        assert _existing(names) == names
        drill.send_signal(signal.SIGTERM)
        _, stderr = drill.communicate(timeout=180)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()
    assert drill.returncode == 130, stderr[-3000:]
    assert "中断" in stderr
    assert _existing(names) == []
    assert _running_from(tmp_path / "run") == []


def test_what_a_killed_drill_left_is_swept_by_the_next_one(tmp_path: Path) -> None:
    drill = _drill(tmp_path)
    try:
        names = _wait_until_boxes_answer(drill, tmp_path)
        drill.send_signal(signal.SIGKILL)  # no finally, no atexit: everything stays
        drill.communicate(timeout=60)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()
    assert _existing(names) == names
    removed = netns.sweep(NETNS_PREFIX)
    assert set(names) <= set(removed)
    assert _existing(names) == []
    deadline = time.monotonic() + 30  # the processes inside were killed with their LAN
    while _running_from(tmp_path / "run") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _running_from(tmp_path / "run") == []
