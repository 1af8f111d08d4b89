"""Fixtures for the printing tests: stand-in 外字 fonts built from IPAmj glyphs (no real
行政事務標準文字 or town font can be installed here), a font registry with them and the
synthetic towns' 外字 tables, town and clerk keys, and an `Issue` factory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pdf_inspect import IssueFactory

from printing.fonts import FontRegistry
from printing.layout import JST, Issue, IssueNumber, Signer
from printing.standin_fonts import build_standin_fonts
from shared.crypto import ClerkKeys, TownKeys, issue_clerk_certificate
from shared.model import Role, TownExport

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=JST)
AS_OF = datetime(2026, 11, 26, 2, 0, tzinfo=JST)


@pytest.fixture(scope="session")
def standin_fonts(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, dict[int, str]]]:
    font_dir = tmp_path_factory.mktemp("fonts")
    return font_dir, build_standin_fonts(font_dir)


@pytest.fixture(scope="session")
def registry(
    standin_fonts: tuple[Path, dict[str, dict[int, str]]], small_exports: list[TownExport]
) -> FontRegistry:
    registry = FontRegistry.from_directory(standin_fonts[0])
    for export in small_exports:
        registry.register_gaiji(export.gaiji)
    return registry


@pytest.fixture(scope="session")
def exports(small_exports: list[TownExport]) -> dict[str, TownExport]:
    return {e.town.code: e for e in small_exports}


@pytest.fixture(scope="session")
def town_keys() -> dict[str, TownKeys]:
    return {code: TownKeys.generate(code) for code in ("15307", "15405", "15581")}


@pytest.fixture(scope="session")
def signers(town_keys: dict[str, TownKeys]) -> dict[str, Signer]:
    result = {}
    for code, keys in town_keys.items():
        clerk = ClerkKeys.generate(code, f"clerk{code[-3:]}")
        cert = issue_clerk_certificate(
            keys,
            clerk.public,
            roles=[Role.CLERK],
            on_roster=True,
            issued_at=datetime(2026, 4, 1, tzinfo=UTC),
        )
        result[code] = Signer(clerk, cert, bytes(range(32)), b"\x01\x02\x03\x04")
    return result


@pytest.fixture
def make_issue(exports: dict[str, TownExport]) -> IssueFactory:
    serials = iter(range(1, 10_000))

    def make(code: str = "15307", **changes: Any) -> Issue:
        issue = Issue(
            town=exports[code].town,
            number=IssueNumber(NOW.date(), code, "B01", "T02", "P01", next(serials)),
            issued_at=NOW,
            data_as_of=AS_OF,
        )
        return replace(issue, **changes)

    return make
