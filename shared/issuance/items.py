"""Which items a resident-record document prints, and in which order its people appear.

Why a module: the default omissions are where a naive certificate leaks. 世帯主の氏名と続柄
(always together), 本籍・筆頭者, 住民票コード and 個人番号 — and for foreign residents
国籍・地域, 在留資格等 and 通称 — are printed only when asked for. 住民票コード and 個人番号
are *restricted*: only the person or their household may have them (BRIEF §4).

The always-printed items (氏名 with フリガナ, 生年月日, 性別, 住所 and its dates, 転入前住所)
are not options; printing decides their layout. A household copy (世帯連記式) holds at most
four people a sheet and lists members in statutory order: 世帯主, 配偶者, children by birth
date, then the rest by birth date.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from shared.model import Resident, ResidentKind

from .requests import DocumentKind, Item

RESTRICTED_ITEMS = frozenset({Item.MY_NUMBER, Item.JUMINHYO_CODE})
FOREIGN_ITEMS = frozenset({Item.NATIONALITY, Item.RESIDENCE_STATUS, Item.ALIAS})
JAPANESE_ITEMS = frozenset({Item.HONSEKI})

# Item options each document kind offers; other kinds offer none.
OPTIONS: dict[DocumentKind, frozenset[Item]] = {
    DocumentKind.JUMINHYO: frozenset(Item),
    DocumentKind.JOHYO: frozenset(Item),
    DocumentKind.KISAI_JIKO: frozenset(Item),
    DocumentKind.FUHYO: frozenset({Item.HONSEKI}),  # 本籍・筆頭者 omitted by default since 2022
}

PEOPLE_PER_SHEET = 4

_SPOUSES = frozenset({"妻", "夫", "配偶者", "妻（未届）", "夫（未届）"})


def options_for(document: DocumentKind) -> frozenset[Item]:
    return OPTIONS.get(document, frozenset())


def applicable_items(items: Iterable[Item], subjects: Iterable[Resident]) -> frozenset[Item]:
    """Items that mean something for at least one subject (本籍 for Japanese residents,
    国籍 and the like for foreign residents); the rest are dropped, not refused."""
    kinds = {s.kind for s in subjects}
    keep = set(items)
    if ResidentKind.JAPANESE not in kinds:
        keep -= JAPANESE_ITEMS
    if ResidentKind.FOREIGN not in kinds:
        keep -= FOREIGN_ITEMS
    return frozenset(keep)


def _rank(person: Resident, head_id: str) -> int:
    if person.id == head_id or person.relationship == "世帯主":
        return 0
    if person.relationship in _SPOUSES:
        return 1
    if person.relationship == "子" or person.relationship.endswith(("男", "女")):
        return 2
    return 3


def statutory_order(members: Iterable[Resident], head_id: str) -> list[Resident]:
    """Household members as a 世帯連記式 copy lists them."""
    return sorted(members, key=lambda p: (_rank(p, head_id), p.birth_date, p.id))


def sheets(people: int) -> int:
    """Sheets of a 世帯連記式 copy: four people a sheet, at least one sheet."""
    return max(1, math.ceil(people / PEOPLE_PER_SHEET))
