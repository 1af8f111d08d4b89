"""An independent mDNS client sees what a box advertises: `avahi-browse` (avahi-utils,
through the avahi-daemon that scripts/services.sh runs on loopback only) resolves the
box's `_renkei._tcp` and `_https._tcp` services, its Japanese instance name, address,
port and TXT records. python-zeroconf is bound to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from discovery_nodes import start_node

from shared.crypto import FederationRoot

REPO = Path(__file__).resolve().parents[2]


def unescape(text: str) -> str:
    """avahi-browse -p escapes a label byte-wise: \\DDD (decimal) and \\<char>."""
    raw = re.sub(
        rb"\\(\d{3}|.)",
        lambda m: bytes([int(m[1])]) if m[1].isdigit() else m[1],
        text.encode(),
    )
    return raw.decode("utf-8")


@pytest.fixture(scope="module")
def avahi() -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root to start avahi-daemon (scripts/services.sh)")
    for tool, package in (("avahi-browse", "avahi-utils"), ("avahi-daemon", "avahi-daemon")):
        if shutil.which(tool) is None:
            pytest.fail(f"missing {tool}: install Debian package {package!r}")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "start"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"scripts/services.sh start failed:\n{proc.stdout}\n{proc.stderr}")


async def browse(service_type: str, name: str, timeout: float = 20) -> list[str]:
    """Resolved ('=') lines for instance `name`, fields split (avahi-browse -rtp)."""
    deadline = time.monotonic() + timeout
    output = ""
    while time.monotonic() < deadline:
        process = await asyncio.create_subprocess_exec(
            "avahi-browse", "-rtp", service_type,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 15)
        output = out.decode(errors="replace")
        for line in output.splitlines():
            fields = line.split(";")
            if len(fields) >= 10 and fields[0] == "=" and unescape(fields[3]) == name:
                return fields
        await asyncio.sleep(0.3)
    raise AssertionError(f"avahi-browse never resolved {name!r} {service_type}:\n{output}")


@pytest.mark.timeout(90)
def test_avahi_browse_sees_the_box_and_its_txt_records(avahi: None, tmp_path: Path) -> None:
    root = FederationRoot.generate()

    async def scenario() -> None:
        node = await start_node(
            tmp_path,
            "seiro",
            "15307",
            pin=root.verify_key,
            root=root,
            settings={"name": "聖籠町役場 連携ボックス"},
        )
        try:
            await asyncio.wait_for(node.lan.advertised.wait(), 20)
            name = node.lan.identity.name
            assert name == "聖籠町役場 連携ボックス"
            port = str(node.lan.settings.port)
            fields = await browse("_renkei._tcp", name)
            # =;iface;proto;name;type;domain;host;address;port;txt
            assert fields[1] == "lo", "mDNS must stay on loopback"
            assert (fields[6], fields[7], fields[8]) == ("renkei-seiro-15307.local",
                                                         "127.0.0.1", port)  # fmt: skip
            txt = set(re.findall(r'"([^"]*)"', fields[9]))
            assert txt == {"box=seiro-15307", "town=15307",
                           f"fp={node.lan.identity.fingerprint}", "pv=1"}  # fmt: skip
            fields = await browse("_https._tcp", name)
            assert fields[8] == port and '"path=/"' in fields[9]
        finally:
            await node.stop()

    asyncio.run(scenario())


def test_unescape() -> None:
    assert unescape(r"a\032b\.c\\d") == "a b.c\\d"
    assert unescape(r"\232\129\150") == "聖"
