"""税証明: 所得・課税証明書, 非課税証明書, 納税証明書, 軽自動車税 納税証明書（継続検査用）.

Fiscal year N shows income of year N−1 and is issuable from 1 June of year N; the address
on 1 January of year N decides the issuing town and is printed. Someone who never filed
and is nobody's dependant gets no 課税証明書 until they file. The 納税証明書 prints each
期 with its state and the totals 納期未到来額 and 滞納額 (overdue and unpaid) under the
taxpayer's latest name and address. The 継続検査用 certificate is free and refused while
any year's tax on that vehicle is unpaid. These renderers refuse data that contradicts the
document (`DocumentRefused`), as a second line behind the issuance rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from printing.canvas import A4, Canvas, Page
from printing.errors import DocumentRefused
from printing.fonts import FontRegistry, FontRole
from printing.layout import (
    Column,
    Issue,
    PrintedDocument,
    Signer,
    draw_certification,
    draw_table,
    draw_title,
    finish,
    footer_height,
    wareki,
    yen,
)
from printing.qr import DocumentKind
from shared.model import FilingStatus, Installment, Resident, TaxAssessment, TaxKind, Vehicle
from shared.wareki import to_wareki_parts


def _era_year(year: int) -> str:
    """令和8 for 2026 (the era on 1 April of that fiscal year)."""
    parts = to_wareki_parts(date(year, 4, 1))
    return f"{parts.era.name}{parts.year if parts.year > 1 else '元'}"


def _header(
    canvas: Canvas,
    title: str,
    sub: str,
    resident: Resident,
    address: str,
    address_label: str = "住所",
) -> tuple[Page, float]:
    page = canvas.add_page()
    draw_title(page, title)
    if sub:
        page.text(105, 28, sub, size=10, align="C")
    y = 40.0
    for label, value, role in (
        (address_label, address, FontRole.BODY),
        ("氏名", resident.name, FontRole.NAME),
        ("生年月日", wareki(resident.birth_date), FontRole.BODY),
    ):
        label_w = page.text(20, y, label, size=8, gray=70)
        page.text(
            max(48, 23 + label_w),
            y,
            value,
            size=12 if label == "氏名" else 10.5,
            role=role,
            width=145,
        )
        page.line(20, y + 2, 195, y + 2, width=0.15)
        y += 8
    return page, y + 4


def render_income_certificate(
    issue: Issue,
    resident: Resident,
    assessment: TaxAssessment,
    signer: Signer,
    *,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """所得・課税証明書, or 非課税証明書 when no tax was assessed."""
    year = assessment.fiscal_year
    if issue.day < date(year, 6, 1):
        raise DocumentRefused(
            f"fiscal year {year} certificates are issued from {year}-06-01",
            f"{_era_year(year)}年度の証明は{_era_year(year)}年6月1日から発行できます。",
        )
    if assessment.filing is FilingStatus.NOT_FILED:
        raise DocumentRefused(
            f"{resident.id} has not filed for {year}",
            "申告がないため証明できません。住民税の申告をしてから請求してください。",
        )
    kind = DocumentKind.KAZEI if assessment.taxable else DocumentKind.HIKAZEI
    canvas = Canvas(issue.town.code, size=A4, registry=registry)
    title = f"{_era_year(year)}年度　{'所得・課税証明書' if assessment.taxable else '非課税証明書'}"
    sub = f"（{_era_year(year - 1)}年1月1日から12月31日までの所得）"
    page, y = _header(
        canvas,
        title,
        sub,
        resident,
        assessment.address_on_jan1,
        f"住所（{_era_year(year)}年1月1日現在）",
    )
    page.text(20, y, "所得の内訳", size=10, role=FontRole.GOTHIC)
    rows = [[str(k), yen(v)] for k, v in assessment.income] or [["所得なし", yen(0)]]
    rows.append(["合計所得金額", yen(assessment.total_income)])
    y = draw_table(page, 20, y + 2, [Column("所得の種類", 90), Column("所得金額", 60, "R")], rows)
    page.text(20, y + 7, "所得控除", size=10, role=FontRole.GOTHIC)
    rows = [[name, yen(v)] for name, v in assessment.deductions]
    rows.append(["所得控除合計", yen(sum(v for _, v in assessment.deductions))])
    rows.append(["扶養人数", f"{assessment.dependants}人"])
    y = draw_table(page, 20, y + 9, [Column("控除の種類", 90), Column("金額", 60, "R")], rows)
    if assessment.taxable:
        page.text(20, y + 7, "税額", size=10, role=FontRole.GOTHIC)
        rows = [
            ["市町村民税", yen(assessment.municipal_tax)],
            ["県民税", yen(assessment.prefectural_tax)],
            ["合計", yen(assessment.municipal_tax + assessment.prefectural_tax)],
        ]
        y = draw_table(page, 20, y + 9, [Column("税目", 90), Column("年税額", 60, "R")], rows)
        statement = "上記のとおり証明します。"
    else:
        statement = (
            f"上記の者は、{_era_year(year)}年度の市町村民税・県民税が非課税であることを証明します。"
        )
    limit = A4[1] - footer_height(canvas, issue) - 34
    if y + 10 > limit:
        page = canvas.add_page()
        y = 30
    draw_certification(page, issue, statement, y + 12)
    return finish(canvas, issue, kind, resident.name, signer)


def _state(item: Installment, day: date) -> str:
    if item.outstanding <= 0:
        return "完納"
    return "納期未到来" if item.due >= day else "滞納"


ROWS_PER_PAGE = 22


def render_payment_certificate(
    issue: Issue,
    taxpayer: Resident,
    address: str,
    installments: Sequence[Installment],
    signer: Signer,
    *,
    taxes: Sequence[TaxKind] | None = None,
    fiscal_years: Sequence[int] | None = None,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """納税証明書 for the chosen taxes and years (all of the taxpayer's by default), under
    the latest name (`taxpayer`) and `address`."""
    chosen = sorted(
        (
            i
            for i in installments
            if i.taxpayer_id == taxpayer.id
            and (taxes is None or i.tax in taxes)
            and (fiscal_years is None or i.fiscal_year in fiscal_years)
        ),
        key=lambda i: (i.fiscal_year, list(TaxKind).index(i.tax), i.vehicle_id, i.period),
    )
    if not chosen:
        raise DocumentRefused("no installment to certify", "証明する課税がありません。")
    day = issue.day
    canvas = Canvas(issue.town.code, size=A4, registry=registry)
    columns = [
        Column("税目", 38),
        Column("年度", 20, "C"),
        Column("期", 10, "C"),
        Column("納期限", 30, "C"),
        Column("税額", 24, "R"),
        Column("納付済額", 24, "R"),
        Column("未納額", 22, "R"),
        Column("状態", 17, "C"),
    ]
    rows = [
        [
            str(i.tax),
            f"{_era_year(i.fiscal_year)}",
            str(i.period),
            wareki(i.due),
            yen(i.amount),
            yen(i.paid),
            yen(i.outstanding),
            _state(i, day),
        ]
        for i in chosen
    ]
    y = 0.0
    for start in range(0, len(rows), ROWS_PER_PAGE):
        page, y = _header(canvas, "納税証明書", "", taxpayer, address)
        y = draw_table(page, 15, y, columns, rows[start : start + ROWS_PER_PAGE], size=8.5)
    not_due = sum(i.outstanding for i in chosen if i.outstanding > 0 and i.due >= day)
    overdue = sum(i.outstanding for i in chosen if i.outstanding > 0 and i.due < day)
    summary = [
        ["税額合計", yen(sum(i.amount for i in chosen))],
        ["納付済額", yen(sum(i.paid for i in chosen))],
        ["納期未到来額", yen(not_due)],
        ["滞納額", yen(overdue)],
    ]
    limit = A4[1] - footer_height(canvas, issue) - 34
    if y + 8 + 6 * 5 > limit:
        page, y = _header(canvas, "納税証明書", "", taxpayer, address)
    y = draw_table(page, 15, y + 6, [Column("区分", 60), Column("金額", 45, "R")], summary)
    draw_certification(page, issue, "上記のとおり相違ないことを証明します。", y + 10)
    return finish(canvas, issue, DocumentKind.NOZEI, taxpayer.name, signer)


def render_vehicle_certificate(
    issue: Issue,
    owner: Resident,
    address: str,
    vehicle: Vehicle,
    installments: Sequence[Installment],
    signer: Signer,
    *,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """軽自動車税（種別割）納税証明書（継続検査用）: free; refused while any year's tax on
    this vehicle is unpaid."""
    own = sorted(
        (i for i in installments if i.vehicle_id == vehicle.id and i.tax is TaxKind.LIGHT_VEHICLE),
        key=lambda i: (i.fiscal_year, i.period),
    )
    unpaid = [i for i in own if i.outstanding > 0]
    if unpaid:
        years = "、".join(sorted({f"{_era_year(i.fiscal_year)}年度" for i in unpaid}))
        raise DocumentRefused(
            f"vehicle {vehicle.id} has unpaid tax",
            f"この車両の軽自動車税（{years}）が未納のため、継続検査用の証明書は発行できません。",
        )
    if not own:
        raise DocumentRefused(f"no tax record for vehicle {vehicle.id}", "課税記録がありません。")
    latest = own[-1]
    canvas = Canvas(issue.town.code, size=A4, registry=registry)
    page, y = _header(
        canvas, "軽自動車税（種別割）納税証明書", "（継続検査用）", owner, address, "納税義務者住所"
    )
    rows = [
        ["車両番号", vehicle.plate],
        ["車台番号", vehicle.chassis_number],
        ["車種", vehicle.vehicle_kind],
        ["年度", f"{_era_year(latest.fiscal_year)}年度"],
        ["年税額", yen(sum(i.amount for i in own if i.fiscal_year == latest.fiscal_year))],
        ["納付日", wareki(latest.paid_on)],
        ["有効期限", wareki(date(latest.fiscal_year + 1, 5, 31))],
        ["手数料", "無料（継続検査用）"],
    ]
    y = draw_table(page, 20, y, [Column("項目", 45), Column("内容", 110)], rows, row_height=7.5)
    draw_certification(
        page,
        issue,
        "上記の車両について、軽自動車税（種別割）を納付済みであることを証明します。",
        y + 12,
    )
    return finish(canvas, issue, DocumentKind.KEIJIDOSHA, vehicle.plate, signer)
