"""税証明 as pdftotext sees them: items in order, 和暦, 納期未到来額/滞納額, refusals."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from pdf_inspect import IssueFactory, pdftotext

from printing.certificates.tax import (
    render_income_certificate,
    render_payment_certificate,
    render_vehicle_certificate,
)
from printing.errors import DocumentRefused
from printing.fonts import FontRegistry
from printing.layout import Signer
from shared.model import FilingStatus, Installment, TaxKind, TownExport

ADDRESS = "新潟県北蒲原郡聖籠町大字次第浜2779番地9"


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


def test_income_certificate_items_in_order(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    people = {r.id: r for r in export.residents}
    a = next(a for a in export.tax_assessments if a.taxable and a.fiscal_year == 2026)
    doc = render_income_certificate(
        make_issue(), people[a.resident_id], a, signers["15307"], registry=registry
    )
    text = squash(pdftotext(doc.pdf)[0])
    assert in_order(
        text,
        [
            "令和8年度所得・課税証明書",
            "令和7年1月1日から12月31日までの所得",
            "住所（令和8年1月1日現在）",
            "氏名",
            "生年月日",
            "所得の内訳",
            "合計所得金額",
            "所得控除",
            "所得控除合計",
            "扶養人数",
            "税額",
            "市町村民税",
            "県民税",
            "合計",
            "上記のとおり証明します。",
            "新潟県北蒲原郡聖籠町長",
            "発行番号",
        ],
    )
    assert f"{a.total_income:,}円" in text
    assert f"{a.municipal_tax:,}円" in text and f"{a.prefectural_tax:,}円" in text
    assert squash(a.address_on_jan1) in text


def test_non_taxable_certificate_and_refusals(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    people = {r.id: r for r in export.residents}
    a = next(
        a
        for a in export.tax_assessments
        if not a.taxable and a.fiscal_year == 2026 and a.filing is not FilingStatus.NOT_FILED
    )
    doc = render_income_certificate(
        make_issue(), people[a.resident_id], a, signers["15307"], registry=registry
    )
    text = squash(pdftotext(doc.pdf)[0])
    assert "令和8年度非課税証明書" in text
    assert "令和8年度の市町村民税・県民税が非課税であることを証明します。" in text
    with pytest.raises(DocumentRefused):
        render_income_certificate(
            make_issue(),
            people[a.resident_id],
            replace(a, filing=FilingStatus.NOT_FILED),
            signers["15307"],
            registry=registry,
        )
    early = make_issue(number=replace(make_issue().number, day=date(2026, 5, 20)))
    with pytest.raises(DocumentRefused, match="2026-06-01"):
        render_income_certificate(
            replace(early, issued_at=early.issued_at.replace(month=5, day=20)),
            people[a.resident_id],
            a,
            signers["15307"],
            registry=registry,
        )


def _installment(
    n: int, due: date, amount: int, paid: int, tax: TaxKind = TaxKind.RESIDENT, vehicle: str = ""
) -> Installment:
    return Installment(
        id=f"I{n}",
        town_code="15307",
        taxpayer_id="P1",
        tax=tax,
        fiscal_year=due.year,
        period=n,
        due=due,
        amount=amount,
        paid=paid,
        paid_on=due if paid else None,
        vehicle_id=vehicle,
    )


def test_payment_certificate_shows_not_yet_due_and_arrears(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    person = replace(exports["15307"].residents[0], id="P1")
    items = [
        _installment(1, date(2026, 7, 31), 10_000, 10_000),  # paid
        _installment(2, date(2026, 9, 30), 10_000, 4_000),  # overdue: 6,000 滞納
        _installment(3, date(2026, 12, 28), 10_000, 0),  # not yet due (issued 11-27)
        _installment(4, date(2027, 1, 31), 9_000, 0),  # not yet due
    ]
    doc = render_payment_certificate(
        make_issue(), person, ADDRESS, items, signers["15307"], registry=registry
    )
    text = squash(pdftotext(doc.pdf)[0])
    assert in_order(
        text,
        [
            "納税証明書",
            "住所",
            "氏名",
            "税目",
            "年度",
            "期",
            "納期限",
            "税額",
            "納付済額",
            "未納額",
            "状態",
        ],
    )
    assert in_order(text, ["完納", "滞納", "納期未到来", "納期未到来"])
    assert in_order(
        text,
        [
            "税額合計39,000円",
            "納付済額14,000円",
            "納期未到来額19,000円",
            "滞納額6,000円",
            "上記のとおり相違ないことを証明します。",
        ],
    )
    assert "令和8年9月30日" in text  # 和暦


def test_long_payment_history_continues_with_page_numbers(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    person = replace(exports["15307"].residents[0], id="P1")
    items = [_installment(n, date(2000 + n, 6, 1), 1000, 1000) for n in range(1, 31)]
    doc = render_payment_certificate(
        make_issue(), person, ADDRESS, items, signers["15307"], registry=registry
    )
    pages = pdftotext(doc.pdf)
    assert len(pages) == doc.pages == 2
    for n, page in enumerate(pages, start=1):
        assert f"{n}/2" in page
    assert "証明します" not in squash(pages[0]) and "証明します" in squash(pages[1])


def test_vehicle_certificate_is_free_and_refused_while_any_year_is_unpaid(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    vehicle = export.vehicles[0]
    person = next(r for r in export.residents if r.id == vehicle.owner_id)
    lv = TaxKind.LIGHT_VEHICLE
    paid = [
        _installment(1, date(2025, 6, 2), 10_800, 10_800, lv, vehicle.id),
        _installment(2, date(2026, 6, 1), 10_800, 10_800, lv, vehicle.id),
    ]
    doc = render_vehicle_certificate(
        make_issue(), person, ADDRESS, vehicle, paid, signers["15307"], registry=registry
    )
    text = squash(pdftotext(doc.pdf)[0])
    assert in_order(
        text,
        [
            "軽自動車税（種別割）納税証明書",
            "（継続検査用）",
            "納税義務者住所",
            "氏名",
            "車両番号",
            squash(vehicle.plate),
            "車台番号",
            "車種",
            "年度令和8年度",
            "年税額",
            "納付日令和8年6月1日",
            "有効期限令和9年5月31日",
            "手数料無料",
        ],
    )
    unpaid_old = [_installment(1, date(2024, 6, 1), 10_800, 0, lv, vehicle.id), *paid]
    with pytest.raises(DocumentRefused) as refused:
        render_vehicle_certificate(
            make_issue(), person, ADDRESS, vehicle, unpaid_old, signers["15307"], registry=registry
        )
    assert "令和6年度" in refused.value.message
