"""The image recipe's configuration, checked statically (the recipe itself runs in
test_debootstrap.py, marked slow): scripts parse, data on its own encrypted partition
unlocked by the TPM2, mounted without exec/devices, a clean shutdown on UPS low battery,
time from the closed line, and the partition layout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "firmware" / "image"
SCRIPTS = sorted(IMAGE.glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_strict(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert "set -euo pipefail" in script.read_text()
    if shutil.which("shellcheck"):
        result = subprocess.run(
            ["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout


def test_data_partition_is_encrypted_and_tpm_bound() -> None:
    (entry,) = [
        line.split()
        for line in (IMAGE / "rootfs/crypttab").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    name, device, key, options = entry
    assert (name, device, key) == ("renkei-data", "PARTLABEL=renkei-data", "none")
    assert {"luks", "tpm2-device=auto"} <= set(options.split(","))
    firstboot = (IMAGE / "firstboot.sh").read_text()
    assert "systemd-cryptenroll --unlock-key-file" in firstboot
    assert "--tpm2-device=auto" in firstboot and "--recovery-key" in firstboot
    assert "--wipe-slot=password" in firstboot  # no key that is not the TPM's or recovery


def test_data_is_mounted_on_its_own_partition_without_exec() -> None:
    mounts = {
        fields[1]: fields
        for line in (IMAGE / "rootfs/fstab").read_text().splitlines()
        if (fields := line.split()) and not line.startswith("#")
    }
    data = mounts["/var/lib/renkei"]
    assert data[0] == "/dev/mapper/renkei-data"
    assert {"nodev", "nosuid", "noexec"} <= set(data[3].split(","))
    layout = {p.name: p.read_text() for p in (IMAGE / "repart.d").glob("*.conf")}
    labels = sorted(re.search(r"^Label=(\S+)", t, re.M).group(1) for t in layout.values())  # type: ignore[union-attr]
    assert labels == ["ESP", "renkei-data", "renkei-root"]
    assert "Format=" not in layout["30-data.conf"]  # formatted at first boot, on the box


def test_ups_low_battery_shuts_down_cleanly() -> None:
    upsmon = (IMAGE / "rootfs/nut/upsmon.conf").read_text()
    assert re.search(r'^SHUTDOWNCMD "/sbin/shutdown -h \+0"$', upsmon, re.M)
    assert re.search(r"^MONITOR \S+@\S+ 1 \S+ \S+ secondary$", upsmon, re.M)
    recipe = (IMAGE / "build-rootfs.sh").read_text()
    assert "nut-monitor.service" in recipe and "nut-client" in recipe


def test_time_comes_from_the_closed_line() -> None:
    chrony = (IMAGE / "rootfs/chrony/renkei.conf").read_text()
    assert "sourcedir /etc/chrony/sources.d" in chrony and "makestep" in chrony
    recipe = (IMAGE / "build-rootfs.sh").read_text()
    assert 'sed -i "/^pool /d"' in recipe  # no Internet NTP pool under 三層の対策
    assert "renkei-hub.sources" in (IMAGE / "firstboot.sh").read_text()


def test_recipe_installs_every_unit_and_the_fonts() -> None:
    recipe = (IMAGE / "build-rootfs.sh").read_text()
    assert '"$UNITS"/*.service' in recipe
    for package in ("fonts-ipamj-mincho", "fonts-ipaexfont", "cups", "chrony", "cryptsetup",
                    "tpm2-tools", "python3-venv", "linux-image-amd64", "systemd-boot"):  # fmt: skip
        assert re.search(rf"(^|\s){re.escape(package)}(\s|$)", recipe, re.M), package
    assert "/opt/renkei/versions/$VERSION" in recipe and "--no-index" in recipe


def test_enrolment_stick_label_fits_a_fat_label() -> None:
    """mkfs.vfat refuses labels over 11 characters (found booting the image in QEMU)."""
    label = re.search(r'^STICK_LABEL="([^"]+)"$', (IMAGE / "firstboot.sh").read_text(), re.M)
    assert label and len(label.group(1)) <= 11 and label.group(1).isupper()
    assert label.group(1) in (IMAGE / "boot-test.sh").read_text()


def test_firstboot_mounts_through_systemd() -> None:
    """The service has its own mount namespace: a plain `mount` there would vanish when it
    exits (found booting the image), so the data partition is mounted by its fstab unit."""
    firstboot = (IMAGE / "firstboot.sh").read_text()
    assert "systemctl start var-lib-renkei.mount" in firstboot
    assert not re.search(r'^\s*mount "\$DATA"', firstboot, re.M)
