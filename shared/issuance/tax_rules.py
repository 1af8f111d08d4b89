"""Tax certificates: which year, which town, who gets none, what the 納税証明書 shows.

Rules (BRIEF §4, 地方税法):

- 課税（所得）証明書 and 非課税証明書 are per person per fiscal year 年度 N, showing the
  income of year N−1; year N's certificate exists once the assessment is fixed, so it is
  issuable from 1 June of year N.
- The town where the person lived on 1 January of year N assesses — and certifies — year
  N. Someone who moved in later gets year N from the previous town.
- A person who never filed and is nobody's dependant (`FilingStatus.NOT_FILED`) gets no
  certificate until they file: the town knows nothing it could certify. A dependant does.
- A 非課税証明書 is only for someone not taxed that year.
- The 納税証明書 shows the payment state of one tax and year: assessed, paid, the amount
  not yet due (納期未到来額) and the amount in arrears (滞納額) — it is issued either way.
- The 軽自動車税 certificate for 継続検査 is free and refused only while *that vehicle's*
  tax of any year is unpaid; arrears on other taxes or other vehicles do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.model import FilingStatus, Resident, TaxAssessment, TaxKind, Vehicle

from .context import IssuanceContext
from .refusals import Refusal, refusal
from .requests import DocumentKind, Request

OPENS_ON = (6, 1)  # month, day of year N on which 年度 N's certificates open


@dataclass(frozen=True, slots=True)
class PaymentStatus:
    """What a 納税証明書 prints for one tax and fiscal year."""

    tax: TaxKind
    fiscal_year: int
    assessed: int
    paid: int
    not_yet_due: int  # 納期未到来額
    arrears: int  # 滞納額


@dataclass(frozen=True, slots=True)
class TaxFacts:
    fiscal_year: int | None = None
    income_year: int | None = None  # year N−1 for 年度 N
    assessment: TaxAssessment | None = None
    payment: PaymentStatus | None = None
    vehicle: Vehicle | None = None


def opens_on(fiscal_year: int) -> date:
    return date(fiscal_year, *OPENS_ON)


def check(
    request: Request, subject: Resident, ctx: IssuanceContext
) -> tuple[Refusal | None, TaxFacts | None]:
    if request.document in (DocumentKind.KAZEI, DocumentKind.HIKAZEI):
        return _assessment(request, subject, ctx)
    if request.document is DocumentKind.NOZEI:
        return _payment(request, subject, ctx)
    if request.document is DocumentKind.KEIJIDOSHA_KEIZOKU:
        return _vehicle(request, subject, ctx)
    return None, None


def _assessment(
    request: Request, subject: Resident, ctx: IssuanceContext
) -> tuple[Refusal | None, TaxFacts | None]:
    fy = request.fiscal_year
    if fy is None:
        return refusal("tax_year_missing"), None
    if ctx.today < opens_on(fy):
        return refusal("tax_year_not_open", fiscal_year=fy), None
    assessment = ctx.data.assessments.get((subject.id, fy))
    jan1 = date(fy, 1, 1)
    if assessment is None:
        if subject.became_resident > jan1:
            return refusal("tax_other_town", fiscal_year=fy), None
        return refusal("tax_no_assessment", fiscal_year=fy), None
    town = ctx.data.town
    if assessment.town_code != town.code or town.name not in assessment.address_on_jan1:
        return refusal("tax_other_town", fiscal_year=fy), None
    if assessment.filing is FilingStatus.NOT_FILED:
        return refusal("tax_not_filed", fiscal_year=fy), None
    if request.document is DocumentKind.HIKAZEI and assessment.taxable:
        return refusal("tax_taxable", fiscal_year=fy), None
    return None, TaxFacts(fiscal_year=fy, income_year=fy - 1, assessment=assessment)


def payment_status(
    subject_id: str, tax: TaxKind, fiscal_year: int, ctx: IssuanceContext
) -> PaymentStatus | None:
    bills = [
        i
        for i in ctx.data.installments_of(subject_id)
        if i.tax is tax and i.fiscal_year == fiscal_year
    ]
    if not bills:
        return None
    today = ctx.today
    return PaymentStatus(
        tax=tax,
        fiscal_year=fiscal_year,
        assessed=sum(i.amount for i in bills),
        paid=sum(i.paid for i in bills),
        not_yet_due=sum(i.outstanding for i in bills if i.due >= today),
        arrears=sum(i.outstanding for i in bills if i.due < today),
    )


def _payment(
    request: Request, subject: Resident, ctx: IssuanceContext
) -> tuple[Refusal | None, TaxFacts | None]:
    if request.tax_kind is None:
        return refusal("tax_kind_missing"), None
    fy = request.fiscal_year
    if fy is None:
        return refusal("tax_year_missing"), None
    status = payment_status(subject.id, request.tax_kind, fy, ctx)
    if status is None:
        return refusal("tax_no_assessment", fiscal_year=fy), None
    return None, TaxFacts(fiscal_year=fy, payment=status)


def _vehicle(
    request: Request, subject: Resident, ctx: IssuanceContext
) -> tuple[Refusal | None, TaxFacts | None]:
    vehicle = ctx.data.vehicles.get(request.vehicle_id)
    if vehicle is None or vehicle.owner_id != subject.id:
        return refusal("vehicle_unknown"), None
    unpaid = sorted(
        {i.fiscal_year for i in ctx.data.vehicle_installments(vehicle.id) if i.outstanding > 0}
    )
    if unpaid:
        return refusal("vehicle_unpaid", years="・".join(str(y) for y in unpaid)), None
    return None, TaxFacts(vehicle=vehicle)
