"""The files of an export, in import order, by name."""

from __future__ import annotations

from typing import Any

from .admin import GAIJI, SHOKUIN
from .registry import JUMIN, SETAI, SHIEN_SOCHI
from .spec import Context, FileSpec
from .tax import KAZEI, KEIJIDOSHA, NOUZEI
from .welfare import KOKUHO, YOSHIENSHA

# Import order: the 支援措置 first (BRIEF §3: blocks travel first), gaiji before any name.
FILES: tuple[FileSpec[Any], ...] = (
    GAIJI,
    SHIEN_SOCHI,
    SETAI,
    JUMIN,
    KAZEI,
    KEIJIDOSHA,
    NOUZEI,
    KOKUHO,
    YOSHIENSHA,
    SHOKUIN,
)
BY_NAME: dict[str, FileSpec[Any]] = {spec.name: spec for spec in FILES}

__all__ = [
    "BY_NAME",
    "FILES",
    "GAIJI",
    "JUMIN",
    "KAZEI",
    "KEIJIDOSHA",
    "KOKUHO",
    "NOUZEI",
    "SETAI",
    "SHIEN_SOCHI",
    "SHOKUIN",
    "YOSHIENSHA",
    "Context",
    "FileSpec",
]
