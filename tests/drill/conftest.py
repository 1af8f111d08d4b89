"""The drill's mutation tests are `slow` (a drill per mutation): they leave the default run
unless a marker expression is given (`pytest -m slow tests/drill`), as in tests/firmware."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
