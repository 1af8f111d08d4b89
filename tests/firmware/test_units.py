"""The systemd units in firmware/units/: `systemd-analyze verify` accepts them (in a temp
root holding the binaries they start, so a missing ExecStart or an unknown key fails),
`systemd-analyze security --offline` scores the services' exposure low, and the hardening
keys the appliance relies on are present with the right values.

systemd-analyze comes from the Debian package `systemd` (scripts/setup.sh installs it); it
needs no running systemd for `verify` and `security --offline`."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "firmware" / "units"
SERVICES = ["renkei-edge.service", "renkei-hub.service"]
ALL_UNITS = sorted(p.name for p in UNITS.iterdir() if p.suffix in (".service", ".timer"))
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], defaultdict(list))
            continue
        assert current is not None, f"key outside a section: {line}"
        key, _, value = line.partition("=")
        current[key.strip()].append(value.strip())
    return sections


def service(name: str) -> dict[str, list[str]]:
    return parse_unit((UNITS / name).read_text())["Service"]


def fake_root(tmp_path: Path, units: dict[str, str]) -> Path:
    """A root with the distribution's units, ours, and every ExecStart binary present."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for name, text in units.items():
        (etc / name).write_text(text)
        for command in parse_unit(text).get("Service", {}).get("ExecStart", []):
            binary = root / command.split()[0].lstrip("-@:+!").lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\nexit 0\n")
            binary.chmod(0o755)
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", unit],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def ours() -> dict[str, str]:
    return {name: (UNITS / name).read_text() for name in ALL_UNITS}


@pytest.mark.parametrize("unit", ALL_UNITS)
def test_systemd_analyze_verify(tmp_path: Path, unit: str) -> None:
    result = verify(fake_root(tmp_path, ours()), unit)
    # verify exits 0 on mere warnings (unknown keys): treat any output as a failure
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: an unknown key, or a binary that is not there."""
    units = ours()
    units["renkei-edge.service"] += "\n[Service]\nProtectSytem=strict\n"
    result = verify(fake_root(tmp_path, units), "renkei-edge.service")
    assert "Unknown key" in result.stderr
    root = fake_root(tmp_path / "2", ours())
    (root / "opt/renkei/current/bin/renkei").unlink()
    assert verify(root, "renkei-edge.service").returncode != 0


@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure_is_low(tmp_path: Path, unit: str) -> None:
    """`systemd-analyze security` scores 0 (locked down) .. 10 (exposed); ≤ 2.0 here."""
    root = fake_root(tmp_path, ours())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}",
         "--threshold=20", "--no-pager", unit],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_hardening_keys(name: str) -> None:
    s = service(name)
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "User": "renkei",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/renkei",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
        "LimitCORE": "0",  # town keys in memory must not reach the disk in a core dump
        "MemorySwapMax": "0",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], f"{name}: {key}={s.get(key)}"
    (watchdog,) = s["WatchdogSec"]
    assert 0 < int(watchdog) <= 120
    assert s["ExecStart"][0].startswith("/opt/renkei/current/bin/renkei ")
    assert "@system-service" in s["SystemCallFilter"]


def test_capabilities_are_limited() -> None:
    edge, hub = service("renkei-edge.service"), service("renkei-hub.service")
    # the edge binds 443 and keeps only that; the hub keeps nothing
    assert edge["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert edge["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert "--port 443" in edge["ExecStart"][0]
    assert hub["CapabilityBoundingSet"] == [""]
    assert hub["AmbientCapabilities"] == [""]


def test_edge_waits_for_enrolment_and_its_data_partition() -> None:
    unit = parse_unit((UNITS / "renkei-edge.service").read_text())
    assert unit["Unit"]["ConditionPathExists"] == ["/etc/renkei/box.env"]
    assert unit["Unit"]["RequiresMountsFor"] == ["/var/lib/renkei"]
    firstboot = parse_unit((UNITS / "renkei-firstboot.service").read_text())
    assert firstboot["Unit"]["ConditionPathExists"] == ["!/var/lib/renkei/identity/enrolled"]
    assert "renkei-edge.service" in firstboot["Unit"]["Before"][0]
