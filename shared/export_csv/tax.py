"""課税, 軽自動車 and 納税: kazei.csv, keijidosha.csv, nouzei.csv."""

from __future__ import annotations

from shared.model import FilingStatus, IncomeKind, Installment, TaxAssessment, TaxKind, Vehicle

from .codec import LIST_SEPARATOR, Row, fmt_date
from .errors import ExportWriteError
from .spec import Context, FileSpec

# ---------------------------------------------------------------------------- 課税

_INCOME = tuple(f"所得_{kind.value}" for kind in IncomeKind)

KAZEI: FileSpec[TaxAssessment] = FileSpec(
    name="kazei.csv",
    attribute="tax_assessments",
    header=(
        "宛名番号",
        "年度",
        "申告区分",
        *_INCOME,
        "所得控除",
        "扶養人数",
        "市町村民税額",
        "道府県民税額",
        "1月1日現在住所",
    ),
    key=lambda t: (t.resident_id, t.fiscal_year),
    to_row=lambda t: _tax_row(t),
    from_row=lambda r, c: _tax(r, c),
)


def _tax_row(t: TaxAssessment) -> list[str]:
    income = dict(t.income)
    if len(income) != len(t.income):
        raise ExportWriteError(f"課税 {t.resident_id}/{t.fiscal_year}: 所得の種類が重複しています")
    deductions: list[str] = []
    for name, amount in t.deductions:
        if not name or any(ch in name for ch in (LIST_SEPARATOR, "=")):
            raise ExportWriteError(
                f"課税 {t.resident_id}/{t.fiscal_year}: 控除名「{name}」に「;」「=」は書けません"
            )
        deductions.append(f"{name}={amount}")
    return [
        t.resident_id,
        str(t.fiscal_year),
        t.filing.value,
        *(str(income[k]) if k in income else "" for k in IncomeKind),
        LIST_SEPARATOR.join(deductions),
        str(t.dependants),
        str(t.municipal_tax),
        str(t.prefectural_tax),
        t.address_on_jan1,
    ]


def _tax(r: Row, c: Context) -> TaxAssessment:
    income = tuple(
        (kind, r.integer(column, signed=True))
        for kind, column in zip(IncomeKind, _INCOME, strict=True)
        if r.raw(column) != ""
    )
    deductions: list[tuple[str, int]] = []
    cell = r.text("所得控除", gaiji=False)
    for item in cell.split(LIST_SEPARATOR) if cell else []:
        name, sep, amount = item.partition("=")
        if not name or not sep or not (amount.isascii() and amount.isdigit()):
            raise r.error(
                "所得控除",
                "控除は「名称=金額」を「;」で区切って書いてください"
                "（例 基礎控除=430000;社会保険料控除=120000）",
                "name=amount items separated by ';', amounts in ASCII digits",
            )
        deductions.append((name, int(amount)))
    year = r.integer("年度")
    if not 1900 <= year <= 2999:
        raise r.error("年度", "年度は西暦4桁で書いてください", "a fiscal year as 4 digits")
    return TaxAssessment(
        resident_id=r.ident("宛名番号"),
        town_code=c.town_code,
        fiscal_year=year,
        filing=r.choice("申告区分", FilingStatus),
        income=income,
        deductions=tuple(deductions),
        dependants=r.integer("扶養人数"),
        municipal_tax=r.integer("市町村民税額"),
        prefectural_tax=r.integer("道府県民税額"),
        address_on_jan1=r.text("1月1日現在住所"),
    )


# ---------------------------------------------------------------------------- 軽自動車・納税

KEIJIDOSHA: FileSpec[Vehicle] = FileSpec(
    name="keijidosha.csv",
    attribute="vehicles",
    header=("車両番号", "納税義務者_宛名番号", "標識番号", "車種区分", "車台番号", "年税額"),
    key=lambda v: (v.id,),
    to_row=lambda v: [
        v.id,
        v.owner_id,
        v.plate,
        v.vehicle_kind,
        v.chassis_number,
        str(v.annual_tax),
    ],
    from_row=lambda r, c: Vehicle(
        id=r.ident("車両番号"),
        town_code=c.town_code,
        owner_id=r.ident("納税義務者_宛名番号"),
        plate=r.text("標識番号", required=True),
        vehicle_kind=r.text("車種区分", required=True),
        chassis_number=r.text("車台番号", required=True),
        annual_tax=r.integer("年税額"),
    ),
)

NOUZEI: FileSpec[Installment] = FileSpec(
    name="nouzei.csv",
    attribute="installments",
    header=(
        "収納番号",
        "納税義務者_宛名番号",
        "税目",
        "年度",
        "期別",
        "納期限",
        "調定額",
        "収納額",
        "収納年月日",
        "車両番号",
    ),
    key=lambda i: (i.id,),
    to_row=lambda i: [
        i.id,
        i.taxpayer_id,
        i.tax.value,
        str(i.fiscal_year),
        str(i.period),
        fmt_date(i.due),
        str(i.amount),
        str(i.paid),
        fmt_date(i.paid_on),
        i.vehicle_id,
    ],
    from_row=lambda r, c: _installment(r, c),
)


def _installment(r: Row, c: Context) -> Installment:
    tax = r.choice("税目", TaxKind)
    vehicle = r.ident("車両番号", required=tax is TaxKind.LIGHT_VEHICLE)
    if vehicle and tax is not TaxKind.LIGHT_VEHICLE:
        raise r.error(
            "車両番号",
            "車両番号は軽自動車税の期別にだけ書けます",
            "empty unless 税目 is 軽自動車税",
        )
    paid, paid_on = r.integer("収納額"), r.optional_day("収納年月日")
    if paid > 0 and paid_on is None:
        raise r.error(
            "収納年月日", "収納額があるときは収納年月日も必要です", "a date when 収納額 > 0"
        )
    if paid == 0 and paid_on is not None:
        raise r.error(
            "収納年月日", "収納額が0のときは収納年月日を空にしてください", "empty when 収納額 is 0"
        )
    period = r.integer("期別")
    if period < 1:
        raise r.error("期別", "期別は1以上です", "a period of 1 or more")
    return Installment(
        id=r.ident("収納番号"),
        town_code=c.town_code,
        taxpayer_id=r.ident("納税義務者_宛名番号"),
        tax=tax,
        fiscal_year=r.integer("年度"),
        period=period,
        due=r.day("納期限"),
        amount=r.integer("調定額"),
        paid=paid,
        paid_on=paid_on,
        vehicle_id=vehicle,
    )
