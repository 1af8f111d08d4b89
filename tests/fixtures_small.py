"""Small synthetic federations shared by the hub and box tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.synthetic import generate
from shared.export_csv import write_export
from shared.model import TownExport

SMALL = {"15307": 400, "15405": 200, "15581": 200}


@pytest.fixture(scope="session")
def small_exports() -> list[TownExport]:
    return generate(7, residents_override=SMALL)


@pytest.fixture(scope="session")
def small_export_dir(
    tmp_path_factory: pytest.TempPathFactory, small_exports: list[TownExport]
) -> Path:
    root = tmp_path_factory.mktemp("export") / "day1"
    write_export(small_exports, root)
    return root
