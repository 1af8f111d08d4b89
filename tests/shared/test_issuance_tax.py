"""Tax certificates: 年度 N from 1 June of N, the 1 January town, non-filers and
dependants, the 納税証明書's 納期未到来額 and 滞納額, and the 継続検査用 certificate that
only that vehicle's arrears can stop."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from test_issuance_town import (
    ASSESSMENTS,
    FISCAL_YEAR,
    HOUSEHOLDS,
    INSTALLMENTS,
    NHI,
    RESIDENTS,
    TOWN,
    TOWN_CODE,
    VEHICLE,
    A,
    context,
    request_for,
)

from shared.issuance.context import JST
from shared.issuance.data import TownData
from shared.issuance.decisions import Decision, decide
from shared.issuance.fees import Reduction
from shared.issuance.requests import DocumentKind, RequesterKind
from shared.model import FilingStatus, Installment, Resident, TaxAssessment, TaxKind, Vehicle

R = RequesterKind
Doc = DocumentKind


def _data(
    assessments: tuple[TaxAssessment, ...] = ASSESSMENTS,
    installments: tuple[Installment, ...] = INSTALLMENTS,
    vehicles: tuple[Vehicle, ...] = (VEHICLE,),
    residents: tuple[Resident, ...] = RESIDENTS,
) -> TownData:
    return TownData.build(TOWN, residents, HOUSEHOLDS, (), assessments, installments, vehicles, NHI)


def _code(decision: Decision) -> str | None:
    return None if decision.refusal is None else decision.refusal.code


def test_fiscal_year_n_shows_income_of_n_minus_1_and_opens_in_june() -> None:
    decision = decide(request_for(R.SELF, Doc.KAZEI), context(_data()))
    assert decision.issued and decision.tax is not None
    assert (decision.tax.fiscal_year, decision.tax.income_year) == (FISCAL_YEAR, FISCAL_YEAR - 1)
    may = context(_data(), now=datetime(2026, 5, 31, 16, 0, tzinfo=JST))
    early = decide(request_for(R.SELF, Doc.KAZEI), may)
    assert _code(early) == "tax_year_not_open"
    assert early.refusal is not None and "6月" in early.refusal.tell_applicant


def test_the_town_of_1_january_issues() -> None:
    moved_in = replace(A, became_resident=date(2026, 2, 1))
    residents = tuple(moved_in if r.id == "A" else r for r in RESIDENTS)
    decision = decide(request_for(R.SELF, Doc.KAZEI), context(_data((), residents=residents)))
    assert _code(decision) == "tax_other_town"
    elsewhere = replace(ASSESSMENTS[0], address_on_jan1="新潟県新潟市中央区1番地")
    decision = decide(request_for(R.SELF, Doc.KAZEI), context(_data((elsewhere,))))
    assert _code(decision) == "tax_other_town"
    decision = decide(request_for(R.SELF, Doc.KAZEI), context(_data(())))
    assert _code(decision) == "tax_no_assessment"


def test_non_filer_gets_nothing_until_they_file_but_a_dependant_does() -> None:
    non_filer = replace(
        ASSESSMENTS[0],
        filing=FilingStatus.NOT_FILED,
        income=(),
        municipal_tax=0,
        prefectural_tax=0,
    )
    decision = decide(request_for(R.SELF, Doc.HIKAZEI), context(_data((non_filer,))))
    assert _code(decision) == "tax_not_filed"
    assert decision.refusal is not None and "申告" in decision.refusal.tell_applicant
    dependant = replace(non_filer, filing=FilingStatus.DEPENDANT)
    assert decide(request_for(R.SELF, Doc.HIKAZEI), context(_data((dependant,)))).issued
    assert decide(request_for(R.SELF, Doc.KAZEI), context(_data((dependant,)))).issued


def test_hikazei_only_for_someone_not_taxed() -> None:
    assert _code(decide(request_for(R.SELF, Doc.HIKAZEI), context(_data()))) == "tax_taxable"


def test_nozei_shows_not_yet_due_and_arrears() -> None:
    decision = decide(request_for(R.SELF, Doc.NOZEI), context(_data()))
    assert decision.tax is not None and decision.tax.payment is not None
    status = decision.tax.payment
    assert (status.assessed, status.paid, status.not_yet_due, status.arrears) == (
        100_000,
        50_000,
        50_000,
        0,
    )
    september = context(_data(), now=datetime(2026, 9, 15, 10, 0, tzinfo=JST))
    late = decide(request_for(R.SELF, Doc.NOZEI), september)
    assert late.issued and late.tax is not None and late.tax.payment is not None
    assert (late.tax.payment.not_yet_due, late.tax.payment.arrears) == (0, 50_000)
    no_kind = decide(request_for(R.SELF, Doc.NOZEI, tax_kind=None), context(_data()))
    assert _code(no_kind) == "tax_kind_missing"


def test_vehicle_inspection_certificate_is_free_and_stopped_only_by_that_vehicle() -> None:
    # A owes residence tax (not yet due) and property tax arrears: irrelevant here.
    property_arrears = Installment(
        "P1", TOWN_CODE, "A", TaxKind.PROPERTY, 2025, 1, date(2025, 4, 30), 20_000, 0, None
    )
    other_vehicle = Vehicle("V2", TOWN_CODE, "A", "新潟 580 い 56-78", "軽四輪貨物", "YY2-2", 6000)
    other_unpaid = Installment(
        "L2",
        TOWN_CODE,
        "A",
        TaxKind.LIGHT_VEHICLE,
        2025,
        1,
        date(2025, 6, 2),
        6000,
        0,
        None,
        vehicle_id="V2",
    )
    data = _data(
        installments=(*INSTALLMENTS, property_arrears, other_unpaid),
        vehicles=(VEHICLE, other_vehicle),
    )
    decision = decide(request_for(R.SELF, Doc.KEIJIDOSHA_KEIZOKU), context(data))
    assert decision.issued
    assert decision.fee is not None
    assert (decision.fee.payable, decision.fee.reduction) == (0, Reduction.VEHICLE_INSPECTION)
    refused = decide(request_for(R.SELF, Doc.KEIJIDOSHA_KEIZOKU, vehicle_id="V2"), context(data))
    assert _code(refused) == "vehicle_unpaid"
    assert refused.refusal is not None and "2025" in refused.refusal.reason


def test_vehicle_arrears_of_any_year_and_any_former_owner_count() -> None:
    old = Installment(
        "L0",
        TOWN_CODE,
        "G",
        TaxKind.LIGHT_VEHICLE,
        2019,
        1,
        date(2019, 5, 31),
        10_800,
        5_000,
        None,
        vehicle_id="V1",
    )
    data = _data(installments=(*INSTALLMENTS, old))
    decision = decide(request_for(R.SELF, Doc.KEIJIDOSHA_KEIZOKU), context(data))
    assert _code(decision) == "vehicle_unpaid"
    unknown = decide(request_for(R.SELF, Doc.KEIJIDOSHA_KEIZOKU, vehicle_id="V9"), context(data))
    assert _code(unknown) == "vehicle_unknown"
