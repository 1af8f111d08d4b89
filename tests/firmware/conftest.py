"""Fixtures for the appliance tests: tiny real wheels of a dummy package (built with
`pip wheel` from a temp project, not the whole of renkei, to stay fast) and a release key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey

DUMMY = "renkei_dummy"


def _project(where: Path, version: str, healthy: bool) -> Path:
    where.mkdir(parents=True)
    (where / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["flit_core>=3.4"]\n'
        'build-backend = "flit_core.buildapi"\n'
        "[project]\n"
        'name = "renkei-dummy"\n'
        f'version = "{version}"\n'
        'description = "a stand-in for renkei in update tests"\n'
    )
    package = where / DUMMY
    package.mkdir()
    (package / "__init__.py").write_text(f"VERSION = {version!r}\nHEALTHY = {healthy!r}\n")
    return where


@pytest.fixture(scope="session")
def dummy_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """version -> wheel. 2.0.0 is built to fail its health check."""
    base = tmp_path_factory.mktemp("wheels")
    versions = {"1.0.0": True, "2.0.0": False, "3.0.0": True}
    jobs = {}
    for version, healthy in versions.items():
        project = _project(base / f"src-{version}", version, healthy)
        out = base / f"out-{version}"
        jobs[version] = (
            out,
            subprocess.Popen(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                 "--disable-pip-version-check", "-w", str(out), str(project)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            ),
        )  # fmt: skip
    wheels = {}
    for version, (out, process) in jobs.items():
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output.decode()
        (wheel,) = out.glob("*.whl")
        wheels[version] = wheel
    return wheels


@pytest.fixture(scope="session")
def release_key() -> SigningKey:
    return SigningKey.generate()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The appliance's `slow` tests (debootstrap: minutes, root, the Debian mirror) leave
    the default run unless a marker expression is given (`pytest -m slow ...`).

    Done here, for this folder only, rather than with `addopts = "-m 'not slow'"` in
    pyproject.toml: other folders mark real-process tests `slow` that CI must still run."""
    if config.getoption("markexpr"):
        return
    here = Path(__file__).parent
    keep, drop = [], []
    for item in items:
        in_here = here in Path(str(item.path)).parents
        (drop if in_here and item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
