"""The appliance recipe for real: firmware/image/build-rootfs.sh debootstraps a Debian 12
root (profile `test`), installs Renkei from wheels into /opt/renkei/versions/<v> with the
`current` symlink, the renkei user, the units; then inside that root (chroot):
`renkei --version`, a box started as the renkei user answering the edge health check over
HTTPS, and `systemd-analyze verify` of the installed units.

Marked `slow` (deselected by default; minutes, needs root and the Debian mirror):

    .venv/bin/python -m pytest -m slow tests/firmware/test_debootstrap.py -v -s

RENKEI_DEBIAN_MIRROR overrides the mirror (default deb.debian.org; the recipe's own
default is the dated snapshot), RENKEI_DEBOOTSTRAP_CACHE keeps downloaded .debs between
runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from servers import free_port

from renkei import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "firmware" / "image" / "build-rootfs.sh"
MIRROR = os.environ.get("RENKEI_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def _mounted_under(root: Path) -> list[str]:
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


@contextlib.contextmanager
def _chroot_mounts(root: Path) -> Iterator[None]:
    done: list[Path] = []
    try:
        for source, target, args in (
            ("proc", root / "proc", ["-t", "proc"]),
            ("/dev", root / "dev", ["--bind"]),
        ):
            subprocess.run(["mount", *args, source, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def in_root(root: Path, *command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"]
    return subprocess.run(
        ["chroot", str(root), *env, *command],
        capture_output=True, text=True, check=False, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    assert os.geteuid() == 0, "debootstrap and chroot need root"
    assert shutil.which("debootstrap"), "apt-get install debootstrap (scripts/setup.sh)"
    base = tmp_path_factory.mktemp("appliance")
    wheels, root = base / "wheels", base / "root"

    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
         "--wheel-dir", str(wheels), "--constraint", str(REPO / "requirements.lock"), str(REPO)],
        check=True,
    )  # fmt: skip
    wheel_s = time.monotonic() - started

    key = base / "release-key.pub"
    key.write_text(bytes(SigningKey.generate().verify_key).hex())
    env = dict(os.environ, DEBIAN_MIRROR=MIRROR, RELEASE_KEY=str(key))
    if os.environ.get("RENKEI_DEBOOTSTRAP_CACHE"):
        env["DEBOOTSTRAP_CACHE"] = os.environ["RENKEI_DEBOOTSTRAP_CACHE"]
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(RECIPE), "--profile", "test", str(root), str(wheels)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    build_s = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"\n[timing] pip wheel {wheel_s:.0f} s, build-rootfs.sh --profile test {build_s:.0f} s")
    assert not _mounted_under(root), "the recipe left mounts behind"
    try:
        yield root
    finally:
        if not _mounted_under(root):
            shutil.rmtree(base, ignore_errors=True)


def test_renkei_version_inside_the_root(rootfs: Path) -> None:
    result = in_root(rootfs, "/opt/renkei/current/bin/renkei", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"renkei {__version__}"
    assert os.readlink(rootfs / "opt/renkei/current") == f"versions/{__version__}"
    assert (rootfs / "etc/renkei/release-key.pub").is_file()


def test_renkei_user_and_state_directories(rootfs: Path) -> None:
    result = in_root(rootfs, "id", "-u", "renkei")
    assert result.returncode == 0 and int(result.stdout) > 0
    state = rootfs / "var/lib/renkei"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert (state / "box").is_dir() and (state / "tls").is_dir()
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "renkei-edge.service").is_symlink()
    assert (wants / "renkei-firstboot.service").is_symlink()


def test_systemd_analyze_verify_inside_the_root(rootfs: Path) -> None:
    units = ["renkei-edge.service", "renkei-hub.service", "renkei-firstboot.service"]
    result = in_root(rootfs, "systemd-analyze", "verify", "--man=no", *units)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_box_answers_the_edge_health_check_inside_the_root(rootfs: Path) -> None:
    port = free_port()
    make_tls = (
        "from edge.tls import create_ca, issue_server_cert, write_server_files\n"
        "ca, key = create_ca()\n"
        "cert, server_key = issue_server_cert(ca, key, ['localhost'], ['127.0.0.1'])\n"
        "write_server_files('/var/lib/renkei/tls', cert, server_key)\n"
    )
    url = f"https://127.0.0.1:{port}/api/health"
    with _chroot_mounts(rootfs):
        made = in_root(rootfs, "/opt/renkei/current/bin/python", "-c", make_tls)
        assert made.returncode == 0, made.stderr
        in_root(rootfs, "chown", "-R", "renkei:renkei", "/var/lib/renkei")
        box = subprocess.Popen(
            ["chroot", str(rootfs), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             "runuser", "-u", "renkei", "--", "/opt/renkei/current/bin/renkei", "box",
             "--hub", "http://127.0.0.1:9", "--town", "15307", "--data", "/var/lib/renkei/box",
             "--tls", "/var/lib/renkei/tls", "--host", "127.0.0.1", "--port", str(port)],
        )  # fmt: skip
        try:
            deadline, last = time.monotonic() + 120, None
            while time.monotonic() < deadline:
                assert box.poll() is None, "the box exited"
                last = in_root(
                    rootfs, "/opt/renkei/current/bin/python", "-m", "firmware.healthcheck", url
                )
                if last.returncode == 0:
                    break
                time.sleep(1)
            assert last is not None and last.returncode == 0, last and last.stderr
            # and the probe can fail: a port where nothing listens
            other = f"https://127.0.0.1:{free_port()}/api/health"
            probe = in_root(rootfs, "/opt/renkei/current/bin/python", "-m",
                            "firmware.healthcheck", other)  # fmt: skip
            assert probe.returncode == 1
        finally:
            box.terminate()
            try:
                box.wait(timeout=20)
            except subprocess.TimeoutExpired:
                box.kill()
                box.wait()
