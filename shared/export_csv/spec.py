"""The shape every export file shares: a `FileSpec` (name, fixed header, key, record ⇄ row).

Each `from_row` validates every cell of its row through `Row`; docs/core-export.md
documents the same columns in the same order (a test holds the two together).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .codec import LIST_SEPARATOR, Row
from .errors import ExportWriteError

T = TypeVar("T")
Key = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Context:
    """What validating a row needs beyond the row: the town and its districts."""

    town_code: str
    districts: Mapping[str, frozenset[str]]  # 町字 → its postal codes


@dataclass(frozen=True, slots=True)
class FileSpec(Generic[T]):
    name: str
    attribute: str  # the TownExport field holding these records
    header: tuple[str, ...]
    key: Callable[[T], Key]  # unique within the file; rows are written sorted by it
    to_row: Callable[[T], list[str]]
    from_row: Callable[[Row, Context], T]


def join(items: tuple[str, ...], what: str) -> str:
    for item in items:
        if LIST_SEPARATOR in item or item == "":
            raise ExportWriteError(f"{what}: 一覧の項目「{item}」に「;」や空文字は書けません")
    return LIST_SEPARATOR.join(items)
