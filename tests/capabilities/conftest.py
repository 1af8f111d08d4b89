"""Fixtures for the machine-capability tests.

These tests never skip: a missing tool or service is a missing install step
(scripts/setup.sh) or start step (scripts/services.sh), and must show up as a
FAILURE that names the package or step.  A capability test that skipped
would hide exactly the problem it exists to catch, so any skip of a
``capability`` test is turned into a failure below.

Network rule: these tests only talk to loopback (127.0.0.1) or to addresses
inside network namespaces they create themselves.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
from collections.abc import Callable, Generator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SH = REPO_ROOT / "scripts" / "services.sh"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and item.get_closest_marker("capability") is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"capability test {item.nodeid} was SKIPPED ({report.longrepr!r}); "
            "capability tests must not skip - fix the install step in scripts/setup.sh "
            "or the service start in scripts/services.sh"
        )
    return report


def _need_command(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(
            f"missing capability: command {command!r} not found - "
            f"install Debian package {package!r} (scripts/setup.sh)",
            pytrace=False,
        )
    return path


@pytest.fixture
def need() -> Callable[[str, str], str]:
    """``need("ippeveprinter", "cups-ipp-utils")`` -> path, or FAIL naming the package."""
    return _need_command


@pytest.fixture
def need_module() -> Callable[[str, str], object]:
    """``need_module("playwright.sync_api", "playwright")`` -> module, or FAIL."""

    def _need(module: str, requirement: str) -> object:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(
                f"missing capability: python module {module!r} not importable ({exc}) - "
                f"{requirement!r} must be in requirements.lock and installed by "
                "scripts/setup.sh (uv pip sync requirements.lock)",
                pytrace=False,
            )

    return _need


@pytest.fixture(scope="session")
def system_services() -> None:
    """Make sure D-Bus, avahi-daemon and cupsd run (idempotent; leaves them running)."""
    if not SERVICES_SH.exists():
        pytest.fail(f"missing {SERVICES_SH}", pytrace=False)
    proc = subprocess.run(
        ["bash", str(SERVICES_SH), "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            "missing capability: `bash scripts/services.sh start` failed "
            f"(exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A currently free TCP port on 127.0.0.1."""

    def _free_port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return _free_port


def run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command, capture text output, never raise on non-zero exit."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def sh() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run


@pytest.fixture
def check() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Like ``sh`` but FAILs the test with the command's output on non-zero exit."""

    def _check(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = run(cmd, timeout=timeout)
        if proc.returncode != 0:
            pytest.fail(
                f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
                pytrace=False,
            )
        return proc

    return _check
