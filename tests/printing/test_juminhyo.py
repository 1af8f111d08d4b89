"""住民票の写し as pdftotext sees it: items in order, default omissions, four people a
sheet, 認証文 on the last page only, page n/N, 和暦/西暦, the partner-box wording, the
認証者 (職務代理, 公印規程), 公用/見本 and 除票."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime

import pytest
from pdf_inspect import IssueFactory, pdftotext

from printing.certificates.juminhyo import Form, JuminhyoItems, render_juminhyo, statutory_order
from printing.fonts import FontRegistry
from printing.layout import JST, IssueNumber, PrintedDocument, Signer
from shared.model import Household, Removal, RemovalReason, Resident, ResidentKind, TownExport
from shared.wareki import to_wareki

STATEMENT_ALL = "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def in_order(text: str, items: list[str]) -> bool:
    """Each item occurs after the previous one."""
    position = 0
    for item in items:
        found = text.find(item, position)
        if found < 0:
            return False
        position = found + len(item)
    return True


def family(export: TownExport, size: int = 6) -> tuple[Household, list[Resident]]:
    """A household of `size` with a head, spouse, children and a mother, members given
    out of statutory order."""
    household = next(h for h in export.households if h.head_id)
    template = next(
        r for r in export.residents if r.kind is ResidentKind.JAPANESE and r.removal is None
    )
    plan = [
        ("世帯主", "本間　一郎", date(1960, 3, 3)),
        ("子", "本間　三郎", date(1990, 5, 1)),
        ("母", "本間　トメ", date(1935, 1, 2)),
        ("子", "本間　太郎", date(1985, 7, 4)),
        ("妻", "本間　花子", date(1962, 8, 5)),
        ("子", "本間　次郎", date(1988, 9, 6)),
    ][:size]
    members = [
        replace(
            template,
            id=f"H{i}",
            household_id=household.id,
            relationship=rel,
            name=name,
            birth_date=born,
            kana_certified=True,
        )
        for i, (rel, name, born) in enumerate(plan)
    ]
    head = next(m for m in members if m.relationship == "世帯主")
    return replace(household, head_id=head.id), members


def render(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
    items: JuminhyoItems | None = None,
    size: int = 6,
    **issue_changes: object,
) -> tuple[PrintedDocument, list[str], list[Resident]]:
    household, members = family(exports["15307"], size)
    doc = render_juminhyo(
        make_issue("15307", **issue_changes),
        household,
        members,
        items or JuminhyoItems(),
        signers["15307"],
        whole_household=True,
        registry=registry,
    )
    return doc, pdftotext(doc.pdf), members


def test_default_items_in_order_and_default_omissions(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    _doc, pages, members = render(exports, make_issue, signers, registry, size=2)
    text = pages[0]
    assert in_order(
        text,
        [
            "住民票の写し",
            "住所",
            "フリガナ",
            "氏名",
            "生年月日",
            "性別",
            "住民となった年月日",
            "住所を定めた年月日",
            "届出日",
            "転入前住所",
        ],
    )
    for omitted in ("世帯主", "続柄", "本籍", "筆頭者", "住民票コード", "個人番号"):
        assert omitted not in text, omitted
    for person in members:
        assert person.my_number not in text and person.juminhyo_code not in text
    assert to_wareki(members[0].birth_date) in squash(text)


def test_requested_items_print_in_statutory_order(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    items = JuminhyoItems(
        head_and_relationship=True, honseki=True, juminhyo_code=True, my_number=True
    )
    _doc, pages, members = render(exports, make_issue, signers, registry, items, size=1)
    text = pages[0]
    assert in_order(
        text,
        [
            "世帯主",
            "氏名",
            "生年月日",
            "性別",
            "続柄",
            "住民となった年月日",
            "住所を定めた年月日",
            "届出日",
            "転入前住所",
            "本籍",
            "筆頭者",
            "住民票コード",
            "個人番号",
        ],
    )
    assert members[0].my_number in text and members[0].juminhyo_code in text


def test_four_people_a_sheet_statutory_order_and_certification_on_last_page_only(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    doc, pages, members = render(exports, make_issue, signers, registry, size=6)
    assert doc.pages == 2 and len(pages) == 2
    assert [p.count("フリガナ") for p in pages] == [4, 2]
    assert STATEMENT_ALL not in squash(pages[0])
    assert STATEMENT_ALL in squash(pages[1])
    assert "住民票の写し（続き）" in squash(pages[1])
    for n, page in enumerate(pages, start=1):
        assert f"発行番号{doc.number}{n}/2" in squash(page)
    names = [
        squash(n)
        for n in (
            "本間　一郎",
            "本間　花子",
            "本間　太郎",
            "本間　次郎",
            "本間　三郎",
            "本間　トメ",
        )
    ]
    assert in_order(squash("".join(pages)), names)  # 世帯主, 妻, 子 by birth, 母
    head = next(m for m in members if m.relationship == "世帯主")
    assert next(m.name for m in statutory_order(members, head.id)) == "本間　一郎"


def test_partner_box_wording_on_every_page_with_the_stricken_towns_certifier(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    _doc, pages, _ = render(
        exports, make_issue, signers, registry, host_office="出雲崎町役場", stale=True
    )
    for page in pages:
        flat = squash(page)
        assert "令和8年11月26日2時現在の記録による" in flat
        assert "この証明書は、出雲崎町役場に設置した聖籠町の臨時窓口で発行しました。" in flat
        assert "偽造防止用紙ではない普通紙に印刷しています" in flat
        assert "発行番号" in flat
    last = squash(pages[-1])
    assert "新潟県北蒲原郡聖籠町長星隆" in last  # 聖籠町's mayor, not 出雲崎町's
    assert "（この印は黒色です）" in last
    assert "出雲崎町長" not in last


def test_normal_issue_has_as_of_line_but_no_partner_wording(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    _, pages, _ = render(exports, make_issue, signers, registry, size=1)
    flat = squash(pages[0])
    assert "現在の記録による" in flat
    assert "臨時窓口" not in flat and "普通紙" not in flat


def test_acting_official_certifies_with_the_mayors_seal(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    when = datetime(2026, 12, 15, 9, 0, tzinfo=JST)  # 伊藤 和夫 acts 12-14..12-18
    number = IssueNumber(when.date(), "15307", "B01", "T02", "P01", 77)
    _, pages, _ = render(
        exports, make_issue, signers, registry, size=1, issued_at=when, number=number
    )
    flat = squash(pages[0])
    assert "聖籠町長職務代理者聖籠町副町長伊藤和夫" in flat
    assert "令和8年12月15日" in flat
    for char in "聖籠町長之印":
        assert char in flat


def test_seal_settings_come_from_the_towns_rules(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15405"]
    household = export.households[0]
    members = [r for r in export.residents if r.household_id == household.id]
    doc = render_juminhyo(
        make_issue("15405"),
        household,
        members,
        JuminhyoItems(),
        signers["15405"],
        registry=registry,
    )
    flat = squash("".join(pdftotext(doc.pdf)))
    assert "（この証明書の公印は黒色です）" in flat
    assert "新潟県三島郡出雲崎町長" in flat


def test_foreign_resident_dates_in_western_calendar(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    person = next(r for r in export.residents if r.foreign and r.foreign.expiry)
    assert person.foreign is not None and person.foreign.expiry is not None
    household = next(h for h in export.households if h.id == person.household_id)
    doc = render_juminhyo(
        make_issue(),
        household,
        [person],
        JuminhyoItems(foreign_status=True),
        signers["15307"],
        form=Form.INDIVIDUAL,
        registry=registry,
    )
    text = pdftotext(doc.pdf)[0]
    flat = squash(text)
    born, expiry = person.birth_date, person.foreign.expiry
    assert f"{born.year}年{born.month}月{born.day}日" in flat
    assert f"{expiry.year}年{expiry.month}月{expiry.day}日" in flat
    assert to_wareki(person.became_resident) in flat  # other dates stay 和暦
    assert in_order(text, ["国籍・地域", "在留資格", "在留期間", "在留期間の満了の日"])
    assert "この写しは、住民票の原本と相違ないことを証明する。" in flat
    default = render_juminhyo(
        make_issue(),
        household,
        [person],
        JuminhyoItems(),
        signers["15307"],
        form=Form.INDIVIDUAL,
        registry=registry,
    )
    text = pdftotext(default.pdf)[0]
    assert "国籍・地域" in text and "在留資格" not in text and "個人番号" not in text


@pytest.mark.parametrize(
    ("changes", "mark"), [({"official_use": True}, "公用"), ({"drill": True}, "見本")]
)
def test_official_use_and_drill_marks_on_every_page(
    changes: dict[str, bool],
    mark: str,
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    extra: dict[str, object] = {}
    if changes.get("drill"):
        extra["number"] = IssueNumber(date(2026, 11, 27), "15307", "B01", "T02", "P01", 5, True)
    else:
        extra.update(changes)
    doc, pages, _ = render(exports, make_issue, signers, registry, **extra)
    for page in pages:
        assert mark in page
    if changes.get("drill"):
        assert str(doc.number).startswith("D")


def test_removed_only_gives_a_johyo(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    household, members = family(exports["15307"], 1)
    gone = replace(
        members[0],
        removal=Removal(RemovalReason.MOVED_OUT, date(2026, 9, 1), "新潟県村上市田端町5丁目"),
    )
    doc = render_juminhyo(
        make_issue(), household, [gone], JuminhyoItems(), signers["15307"], registry=registry
    )
    flat = squash(pdftotext(doc.pdf)[0])
    assert "住民票の除票の写し" in flat
    assert in_order(flat, ["消除事由転出", "消除日令和8年9月1日", "転出先"])
    assert "この写しは、住民票の除票の原本と相違ないことを証明する。" in flat


def test_individual_form_puts_one_person_on_each_sheet(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    household, members = family(exports["15307"], 3)
    doc = render_juminhyo(
        make_issue(),
        household,
        members,
        JuminhyoItems(),
        signers["15307"],
        form=Form.INDIVIDUAL,
        registry=registry,
    )
    pages = pdftotext(doc.pdf)
    assert [p.count("フリガナ") for p in pages] == [1, 1, 1]
    assert "この写しは、世帯の一部の住民票の原本と相違ないことを証明する。" in squash(pages[-1])
    assert all("証明する" not in p for p in pages[:-1])
