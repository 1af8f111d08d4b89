"""全住民一覧 (door-to-door safety checks) and 避難行動要支援者名簿.

全住民一覧: living residents sorted by district (大字), address (番地 by its numbers),
household and the statutory member order; a new page at each district, whose name heads
the page; check columns (在宅・避難所・不在・不明) and a remarks line; every page carries
the copy number (配布番号: each printed copy is numbered and logged) and page n/N; the
signed QR is on the first page. People under 支援措置 are masked on copies leaving the
office. Built for speed (14,000 rows): one text op per cell drawn with `FPDF.text()`,
harfbuzz shaping only for names that carry a variation selector.

避難行動要支援者名簿: from welfare data (`SupportNeed`), not the registry. Without a
recorded decision (the mayor's 特に必要 judgment once a disaster has struck or is
imminent) it lists only people who consented; with one, everyone, and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from printing.canvas import A4_LANDSCAPE, Canvas, Page
from printing.certificates.juminhyo import statutory_order
from printing.errors import DocumentRefused
from printing.fonts import FontRegistry, FontRole
from printing.layout import (
    Issue,
    PrintedDocument,
    Signer,
    draw_footer,
    draw_marks,
    finish,
    wareki,
)
from printing.qr import DocumentKind
from shared.gcpause import gc_paused
from shared.model import Household, Resident, SupportNeed

ROWS_PER_PAGE = 24
ROW = 5.7
TOP = 31.0
CHECKS = "□在宅　□避難所　□不在　□不明"
MASKED = "（支援措置対象・本部で確認）"

# (header, x, width, role)
_COLUMNS: tuple[tuple[str, float, float, FontRole], ...] = (
    ("No.", 10, 9, FontRole.BODY),
    ("世帯番号", 20, 22, FontRole.BODY),
    ("番地", 43, 27, FontRole.BODY),
    ("氏名", 71, 33, FontRole.NAME),
    ("フリガナ", 105, 34, FontRole.BODY),
    ("生年月日", 140, 25, FontRole.BODY),
    ("年齢", 166, 8, FontRole.BODY),
    ("性別", 175, 6, FontRole.BODY),
    ("続柄", 182, 13, FontRole.BODY),
    ("安否確認", 196, 46, FontRole.BODY),
    ("備考", 243, 44, FontRole.BODY),
)


def address_sort_key(address: str) -> tuple[tuple[int, str], ...]:
    """番地 by its numbers: 2番地 < 10番地 < 10番地3."""
    parts = re.split(r"(\d+)", address)
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts if p)


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _list_header(page: Page, issue: Issue, title: str, district: str) -> None:
    page.text(10, 12, title, size=13, role=FontRole.GOTHIC)
    page.text(10, 19, f"{issue.town.name}　大字 {district}", size=15, role=FontRole.GOTHIC)
    page.text(
        287, 12, f"配布番号 第{issue.copy_number}号", size=11, role=FontRole.GOTHIC, align="R"
    )
    page.text(287, 19, "取扱注意：個人情報。持出し・回収・廃棄を記録すること。", size=8, align="R")
    y = TOP - 5.5
    page.rect(10, y - 4, 277, ROW, fill_gray=235, width=0.3)
    for header, x, width, _ in _COLUMNS:
        page.text(x + 0.5, y, header, size=7.5, width=width - 1)


def render_resident_list(
    issue: Issue,
    households: Iterable[Household],
    residents: Iterable[Resident],
    signer: Signer,
    *,
    district_order: Sequence[str] = (),
    masked_ids: frozenset[str] = frozenset(),
    leaving_office: bool = True,
    render: bool = True,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """全住民一覧. With `render=False` the document is laid out and signed but not
    rendered: show `first_page_pdf()` at once, then `render()` the rest."""
    if issue.copy_number < 1:
        raise DocumentRefused("list copies must be numbered", "配布番号を指定してください。")
    with gc_paused():
        canvas, number = _lay_out_list(
            issue, households, residents, district_order, masked_ids, leaving_office, registry
        )
    return finish(
        canvas,
        issue,
        DocumentKind.ZENJUMIN,
        f"{issue.town.name} 全{number}名",
        signer,
        qr_pages={0},
        render=render,
    )


def _lay_out_list(
    issue: Issue,
    households: Iterable[Household],
    residents: Iterable[Resident],
    district_order: Sequence[str],
    masked_ids: frozenset[str],
    leaving_office: bool,
    registry: FontRegistry | None,
    max_pages: int = 0,
) -> tuple[Canvas, int]:
    by_household: dict[str, list[Resident]] = {}
    for r in residents:
        if not r.is_removed:
            by_household.setdefault(r.household_id, []).append(r)
    rank = {name: i for i, name in enumerate(district_order)}
    ordered = sorted(
        (h for h in households if h.id in by_household),
        key=lambda h: (
            rank.get(h.district, len(rank)),
            h.district,
            address_sort_key(h.address),
            h.id,
        ),
    )
    canvas = Canvas(issue.town.code, size=A4_LANDSCAPE, registry=registry)
    day = issue.day
    title = DocumentKind.ZENJUMIN.title
    page: Page | None = None
    row = 0
    district = None
    number = 0
    for household in ordered:
        masked_household = leaving_office and any(
            r.id in masked_ids for r in by_household[household.id]
        )
        for r in statutory_order(by_household[household.id], household.head_id):
            if page is None or row == ROWS_PER_PAGE or household.district != district:
                if max_pages and len(canvas.pages) == max_pages:
                    return canvas, number
                district = household.district
                page = canvas.add_page()
                _list_header(page, issue, title, district)
                row = 0
            number += 1
            y = TOP + row * ROW
            masked = masked_household and r.id in masked_ids
            cells = (
                str(number),
                household.id,
                "―" if masked_household else household.address,
                MASKED if masked else r.name,
                "" if masked else r.kana,
                "" if masked else wareki(r.birth_date),
                "" if masked else str(_age(r.birth_date, day)),
                "" if masked else str(r.sex),
                "" if masked else r.relationship,
                CHECKS,
                "",
            )
            for (_, x, width, role), value in zip(_COLUMNS, cells, strict=True):
                if value:
                    page.text(
                        x + 0.5,
                        y,
                        value,
                        size=7.5,
                        role=role if not masked else FontRole.BODY,
                        width=width - 1,
                    )
            page.line(10, y + 1.7, 287, y + 1.7, width=0.1)
            row += 1
    if page is None:
        raise DocumentRefused("nobody to list", "一覧に載せる住民がいません。")
    return canvas, number


def page_count(households: Iterable[Household], residents: Iterable[Resident]) -> int:
    """Pages of the list without laying it out: a page per ROWS_PER_PAGE rows of each
    district (districts never share a page)."""
    homes = {h.id: h.district for h in households}
    rows: dict[str, int] = {}
    for r in residents:
        if not r.is_removed and r.household_id in homes:
            rows[homes[r.household_id]] = rows.get(homes[r.household_id], 0) + 1
    return sum(-(-n // ROWS_PER_PAGE) for n in rows.values())


def preview_first_page(
    issue: Issue,
    households: Sequence[Household],
    residents: Sequence[Resident],
    *,
    district_order: Sequence[str] = (),
    masked_ids: frozenset[str] = frozenset(),
    leaving_office: bool = True,
    registry: FontRegistry | None = None,
) -> bytes:
    """Page 1 of the list for the screen, in well under a second, while the whole list is
    laid out, signed and rendered: the same page with n/N, marked プレビュー, without
    the QR (the signature covers the whole list, which is not finished yet)."""
    total = page_count(households, residents)
    with gc_paused():
        canvas, _ = _lay_out_list(
            issue,
            households,
            residents,
            district_order,
            masked_ids,
            leaving_office,
            registry,
            max_pages=1,
        )
    page = canvas.pages[0]
    draw_marks(page, issue)
    draw_footer(page, issue, 1, total, qr=False)
    page.text(287, 26, "プレビュー（印刷用ではありません）", size=9, align="R", gray=90)
    return canvas.render(created=issue.issued_at, title=DocumentKind.ZENJUMIN.title)


def render_support_register(
    issue: Issue,
    needs: Iterable[SupportNeed],
    residents: Mapping[str, Resident],
    households: Mapping[str, Household],
    signer: Signer,
    *,
    decision_ref: str = "",
    masked_ids: frozenset[str] = frozenset(),
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """避難行動要支援者名簿: consenting people only, unless `decision_ref` records the
    mayor's signed decision to provide it without consent. People under 支援措置
    (`masked_ids`) are listed last as a masked line: the 名簿 always leaves the office."""
    if issue.copy_number < 1:
        raise DocumentRefused("register copies must be numbered", "配布番号を指定してください。")
    chosen = [n for n in needs if decision_ref or n.consented]
    entries = []
    for need in chosen:
        person = residents[need.resident_id]
        if person.is_removed:
            continue
        household = households[person.household_id]
        entries.append((household, person, need))
    entries.sort(
        key=lambda e: (
            e[1].id in masked_ids,
            e[0].district,
            address_sort_key(e[0].address),
            e[1].id,
        )
    )
    canvas = Canvas(issue.town.code, size=A4_LANDSCAPE, registry=registry)
    basis = (
        f"災害時提供（本人同意なし・町村長の判断 {decision_ref}）"
        if decision_ref
        else "平常時提供（本人同意者のみ）"
    )
    columns = (
        ("氏名", 10, 32, FontRole.NAME),
        ("フリガナ", 43, 32, FontRole.BODY),
        ("生年月日", 76, 25, FontRole.BODY),
        ("性別", 102, 7, FontRole.BODY),
        ("住所", 110, 62, FontRole.BODY),
        ("連絡先", 173, 50, FontRole.BODY),
        ("避難支援等を必要とする事由", 224, 63, FontRole.BODY),
    )
    rows_per_page = 20
    for start in range(0, max(len(entries), 1), rows_per_page):
        page = canvas.add_page()
        page.text(10, 12, DocumentKind.YOSHIEN.title, size=13, role=FontRole.GOTHIC)
        page.text(10, 19, f"{issue.town.name}　{basis}", size=10)
        page.text(287, 12, f"配布番号 第{issue.copy_number}号", size=11, align="R")
        page.text(
            287, 19, "取扱注意：目的外利用・複製禁止（災害対策基本法第49条の11）", size=8, align="R"
        )
        y = TOP - 5.5
        page.rect(10, y - 4, 277, ROW, fill_gray=235, width=0.3)
        for header, x, width, _ in columns:
            page.text(x + 0.5, y, header, size=7.5, width=width - 1)
        for i, (household, person, need) in enumerate(entries[start : start + rows_per_page]):
            y = TOP + i * 6.5
            if person.id in masked_ids:
                page.text(10.5, y, MASKED, size=7.5, width=200)
                page.line(10, y + 2, 287, y + 2, width=0.1)
                continue
            cells = (
                person.name,
                person.kana,
                wareki(person.birth_date),
                str(person.sex),
                f"大字{household.district}{household.address}",
                need.contact,
                need.reason,
            )
            for (_, x, width, role), value in zip(columns, cells, strict=True):
                page.text(x + 0.5, y, value, size=7.5, role=role, width=width - 1)
            page.line(10, y + 2, 287, y + 2, width=0.1)
    return finish(
        canvas, issue, DocumentKind.YOSHIEN, f"{issue.town.name} {len(entries)}名", signer
    )
