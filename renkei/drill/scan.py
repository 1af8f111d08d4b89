"""Personal data at rest: every file a box wrote, searched for a town's residents' names,
kana, 住民票コード and 個人番号 (UTF-8 and UTF-16, both byte orders) — the drill's check
that a partner's replica stays sealed on a box, even while the town is open there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_RESIDENTS = 50  # a sample spread over the town (the subjects always included): each
# needle is one memmem pass over every file, so the sample bounds the scan's time


@dataclass
class ScanResult:
    files: int
    bytes: int
    needles: int
    hits: list[str]


def needles(residents: Iterable[Any], exclude: frozenset[str] = frozenset()) -> set[bytes]:
    found: set[bytes] = set()
    for r in residents:
        for text in (r.name, r.kana, r.juminhyo_code, r.my_number):
            if len(text) < 2 or text in exclude:
                continue
            found.update((text.encode(), text.encode("utf-16-le"), text.encode("utf-16-be")))
    return found


def scan(
    root: Path, residents: list[Any], always: Iterable[Any] = (), exclude: Iterable[str] = ()
) -> ScanResult:
    """`exclude`: texts that are on a box by design though a resident has them too — a
    clerk's display name (clerk certificates are public) that happens to be a resident's."""
    chosen = list(always) + residents[:: max(1, len(residents) // MAX_RESIDENTS)]
    wanted = sorted(needles(chosen, frozenset(exclude)))
    files = size = 0
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        files += 1
        size += len(data)
        found = next((n for n in wanted if n in data), None)
        if found is not None:
            hits.append(f"{path.name}: {found[:24]!r}")
    return ScanResult(files, size, len(wanted), hits)
