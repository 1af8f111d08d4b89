"""住民票の写し and 除票の写し: 世帯連記式 (at most four people a sheet) or 個人票.

Items (BRIEF §4) in the order printed per person: フリガナ, 氏名 (旧氏), 生年月日, 性別,
続柄, 住民となった年月日, 住所を定めた年月日, 届出日, 転入前住所, 本籍, 筆頭者,
住民票コード, 個人番号; for foreign residents 国籍・地域, 通称, and on request
30条45規定区分, 在留資格, 在留期間, 在留期間の満了の日; for a 除票 the removal.
Omitted unless `JuminhyoItems` asks: 世帯主の氏名 and 続柄 (together), 本籍・筆頭者,
住民票コード, 個人番号 (and the foreign status items). Dates are 和暦 except a foreign
resident's birth date and 在留期間の満了の日 (西暦). The 認証文 is on the last page only.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from printing.canvas import A4, Canvas, Page
from printing.errors import DocumentRefused
from printing.fonts import FontRegistry, FontRole
from printing.layout import (
    Issue,
    PrintedDocument,
    Signer,
    draw_certification,
    draw_title,
    finish,
    footer_height,
    seireki,
    wareki,
)
from printing.qr import DocumentKind
from shared.model import Household, Resident, ResidentKind, Town

PER_SHEET = 4


@dataclass(frozen=True, slots=True)
class JuminhyoItems:
    """Optional items the issuance rules allow for this request."""

    head_and_relationship: bool = False  # 世帯主の氏名及び続柄 (always together)
    honseki: bool = False  # 本籍・筆頭者
    juminhyo_code: bool = False
    my_number: bool = False
    foreign_status: bool = False  # 30条45規定区分, 在留資格, 在留期間, 満了日
    uncertified_kana: str = "****"  # town setting: "" or 「****」 until certified


class Form(enum.StrEnum):
    HOUSEHOLD = "世帯連記式"
    INDIVIDUAL = "個人票"


# Statutory order after the 世帯主: spouse, children by birth, their spouses, grandchildren,
# parents, grandparents, siblings, others (by birth date within each rank).
_RANKS: tuple[tuple[str, ...], ...] = (
    ("世帯主",),
    ("妻", "夫"),
    ("子", "長男", "長女", "二男", "二女", "次男", "次女", "三男", "三女", "養子", "養女"),
    ("子の妻", "子の夫"),
    ("孫",),
    ("父", "母", "義父", "義母", "妻の父", "妻の母", "夫の父", "夫の母"),
    ("祖父", "祖母"),
    ("兄", "姉", "弟", "妹"),
)


def _rank(resident: Resident, head_id: str) -> int:
    if resident.id == head_id:
        return 0
    for rank, names in enumerate(_RANKS):
        if resident.relationship in names:
            return rank
    return len(_RANKS)


def statutory_order(members: Sequence[Resident], head_id: str) -> list[Resident]:
    return sorted(members, key=lambda r: (_rank(r, head_id), r.birth_date, r.id))


def full_address(town: Town, household: Household) -> str:
    return f"{town.prefecture}{town.county}{town.name}大字{household.district}{household.address}"


def _kana(resident: Resident, items: JuminhyoItems) -> str:
    return resident.kana if resident.kana_certified else items.uncertified_kana


def _rows(r: Resident, items: JuminhyoItems) -> list[list[tuple[str, str, FontRole]]]:
    """Rows of (label, value, role) in statutory order; a row prints left to right."""
    foreign = r.kind is ResidentKind.FOREIGN
    born = seireki(r.birth_date) if foreign else wareki(r.birth_date)
    name = r.name + (f"（旧氏 {r.former_surname}）" if r.former_surname else "")
    rows: list[list[tuple[str, str, FontRole]]] = [
        [("フリガナ", _kana(r, items), FontRole.BODY)],
        [
            ("氏名", name, FontRole.NAME),
            ("生年月日", born, FontRole.BODY),
            ("性別", str(r.sex), FontRole.BODY),
        ],
    ]
    first = [
        ("住民となった年月日", wareki(r.became_resident), FontRole.BODY),
        ("住所を定めた年月日", wareki(r.address_set), FontRole.BODY),
    ]
    if items.head_and_relationship:
        first.insert(0, ("続柄", r.relationship, FontRole.BODY))
    rows.append(first)
    rows.append(
        [
            ("届出日", wareki(r.notified), FontRole.BODY),
            ("転入前住所", r.previous_address or "（出生）", FontRole.BODY),
        ]
    )
    if items.honseki and not foreign:
        rows.append([("本籍", r.honseki, FontRole.BODY), ("筆頭者", r.hittosha, FontRole.NAME)])
    codes = []
    if items.juminhyo_code:
        codes.append(("住民票コード", r.juminhyo_code, FontRole.BODY))
    if items.my_number:
        codes.append(("個人番号", r.my_number, FontRole.BODY))
    if codes:
        rows.append(codes)
    if foreign and r.foreign is not None:
        f = r.foreign
        alias = [("通称", f.alias, FontRole.NAME)] if f.alias else []
        if items.foreign_status:
            rows.append(
                [
                    ("国籍・地域", f.nationality, FontRole.BODY),
                    ("30条45規定区分", f.status, FontRole.BODY),
                    ("在留資格", f.residence_status, FontRole.BODY),
                ]
            )
            rows.append(
                [
                    ("在留期間", f.period_of_stay, FontRole.BODY),
                    ("在留期間の満了の日", seireki(f.expiry), FontRole.BODY),
                    *alias,
                ]
            )
        else:
            rows.append([("国籍・地域", f.nationality, FontRole.BODY), *alias])
    if r.removal is not None:
        removed = [
            ("消除事由", str(r.removal.reason), FontRole.BODY),
            ("消除日", wareki(r.removal.date), FontRole.BODY),
        ]
        if r.removal.destination:
            removed.append(("転出先", r.removal.destination, FontRole.BODY))
        rows.append(removed)
    return rows


_COLUMNS = {1: (20.0,), 2: (20.0, 88.0), 3: (20.0, 88.0, 146.0)}
RIGHT = 193.0
ROW = 4.4


def _person_block(page: Page, y: float, height: float, r: Resident, items: JuminhyoItems) -> None:
    page.rect(15, y, 180, height, width=0.3)
    line_y = y + 3.8
    for row in _rows(r, items):
        columns = _COLUMNS[len(row)]
        for column, (label, value, role) in enumerate(row):
            x = columns[column]
            limit = (columns[column + 1] - x - 2) if column + 1 < len(row) else RIGHT - x
            label_w = page.text(x, line_y, label, size=7, gray=70) + 2
            size = 13 if label == "氏名" else 9.5
            page.text(
                x + label_w,
                line_y + (1.2 if size > 10 else 0),
                value,
                size=size,
                role=role,
                width=limit - label_w,
            )
        line_y += ROW + (1.6 if any(lbl == "氏名" for lbl, _, _ in row) else 0)
    if line_y - y > height + 1:
        raise DocumentRefused(f"person block of {r.id} overflows ({line_y - y:.1f} mm)")


def render_juminhyo(
    issue: Issue,
    household: Household,
    members: Sequence[Resident],
    items: JuminhyoItems,
    signer: Signer,
    *,
    form: Form = Form.HOUSEHOLD,
    whole_household: bool = False,
    head: Resident | None = None,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """住民票の写し (or 除票の写し when every member is removed) of the given members."""
    if not members:
        raise DocumentRefused("no member to print", "印刷する世帯員が選ばれていません。")
    ordered = statutory_order(members, household.head_id)
    removed_only = all(r.is_removed for r in ordered)
    kind = DocumentKind.JOHYO if removed_only else DocumentKind.JUMINHYO
    canvas = Canvas(issue.town.code, size=A4, registry=registry)
    per_sheet = PER_SHEET if form is Form.HOUSEHOLD else 1
    sheets = [ordered[i : i + per_sheet] for i in range(0, len(ordered), per_sheet)]
    bottom = A4[1] - footer_height(canvas, issue) - 34  # room for the 認証文 on the last page
    top = 44.0 if items.head_and_relationship else 38.0
    block = min(46.0, (bottom - top) / per_sheet) if form is Form.HOUSEHOLD else bottom - top
    address = full_address(issue.town, household)
    if head is None:
        head = next((r for r in members if r.id == household.head_id), None)
    for index, sheet in enumerate(sheets):
        page = canvas.add_page()
        title = kind.title + ("（続き）" if index else "")
        draw_title(page, title)
        page.text(20, 31, "住所", size=7, gray=70)
        page.text(30, 31, address, size=11, width=165)
        if items.head_and_relationship:
            page.text(20, 38, "世帯主", size=7, gray=70)
            if head is None:
                raise DocumentRefused("世帯主 requested but not given")
            page.text(30, 38, head.name, size=11, role=FontRole.NAME)
        for slot, resident in enumerate(sheet):
            _person_block(page, top + slot * block, block - 1.5, resident, items)
    if removed_only:
        statement = "この写しは、住民票の除票の原本と相違ないことを証明する。"
    elif form is Form.INDIVIDUAL and len(ordered) == 1:
        statement = "この写しは、住民票の原本と相違ないことを証明する。"
    elif whole_household:
        statement = "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"
    else:
        statement = "この写しは、世帯の一部の住民票の原本と相違ないことを証明する。"
    last = canvas.pages[-1]
    used = len(sheets[-1]) * block if form is Form.HOUSEHOLD else block
    draw_certification(last, issue, statement, top + used + 6)
    subject = ordered[0].name + (f" ほか{len(ordered) - 1}名" if len(ordered) > 1 else "")
    return finish(canvas, issue, kind, subject, signer)
