"""Decisions beyond the table: 本人確認 in and out of disaster mode, 委任状 checks, default
omissions and household copies, post, the intake queue, stale data, and the shape of
requests (no field for an identity document's number)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from test_issuance_town import (
    NOW,
    TOWN_CODE,
    A,
    B,
    F,
    G,
    context,
    request_for,
)

from shared.issuance import CopayExemption
from shared.issuance import requests as request_module
from shared.issuance.decisions import Handover, Outcome, decide
from shared.issuance.errors import RequestError
from shared.issuance.intake import MemoryIntake, PendingReport, ReportKind
from shared.issuance.refusals import CATALOGUE
from shared.issuance.registers import IssuanceEntry
from shared.issuance.requests import (
    Applicant,
    Channel,
    DocumentKind,
    IdDocumentKind,
    Identity,
    IdentityMethod,
    Item,
    PowerOfAttorney,
    RequesterKind,
)

R = RequesterKind
Doc = DocumentKind


def _code(decision: object) -> str | None:
    refusal = getattr(decision, "refusal", None)
    return None if refusal is None else str(refusal.code)


# ---------------------------------------------------------------------------- requests


def _field_names(cls: type) -> set[str]:
    names = {f.name for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        for arg in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                names |= _field_names(arg)
    return names


def test_identity_records_kinds_and_never_a_document_number() -> None:
    assert {f.name for f in dataclasses.fields(Identity)} == {"method", "documents"}
    for cls in (request_module.Request, IssuanceEntry):
        identity_fields = {n for n in _field_names(cls) if "ident" in n or "id_doc" in n}
        assert all("number" not in n for n in identity_fields), identity_fields
    # Whatever the request carries, no value looks like a card number.
    entry_fields = {f.name for f in dataclasses.fields(IssuanceEntry)}
    assert {"identity_method", "identity_documents"} <= entry_fields
    assert not any(n.startswith(("card", "license", "passport")) for n in entry_fields)


# ---------------------------------------------------------------------------- 本人確認


def test_oral_questions_and_known_to_staff_only_in_disaster_mode_and_flagged() -> None:
    for method in (IdentityMethod.ORAL_QUESTIONS, IdentityMethod.KNOWN_TO_STAFF):
        request = request_for(R.SELF, Doc.JUMINHYO, identity=Identity(method))
        refused = decide(request, context())
        assert _code(refused) == "identity_disaster_only"
        allowed = decide(request, context(disaster_mode=True))
        assert allowed.outcome is Outcome.ISSUE
        assert allowed.identity_flagged
        assert any("災害モード" in n for n in allowed.notes)


def test_two_documents_must_differ_and_photo_id_needs_a_photo() -> None:
    two_same = Identity(
        IdentityMethod.TWO_DOCUMENTS, (IdDocumentKind.PENSION_BOOK, IdDocumentKind.PENSION_BOOK)
    )
    assert _code(decide(request_for(R.SELF, Doc.JUMINHYO, identity=two_same), context())) == (
        "identity_two_documents"
    )
    two = Identity(
        IdentityMethod.TWO_DOCUMENTS,
        (IdDocumentKind.PENSION_BOOK, IdDocumentKind.HEALTH_INSURANCE),
    )
    assert decide(request_for(R.SELF, Doc.JUMINHYO, identity=two), context()).issued
    no_photo = Identity(IdentityMethod.PHOTO_ID, (IdDocumentKind.HEALTH_INSURANCE,))
    assert _code(decide(request_for(R.SELF, Doc.JUMINHYO, identity=no_photo), context())) == (
        "identity_photo_missing"
    )


def test_post_needs_an_enclosed_copy_and_goes_to_the_registered_address() -> None:
    enclosed = Identity(IdentityMethod.ENCLOSED_COPY, (IdDocumentKind.DRIVERS_LICENSE,))
    by_post = request_for(R.SELF, Doc.JUMINHYO, channel=Channel.POST, identity=enclosed)
    decision = decide(by_post, context())
    assert decision.handover is Handover.POST_REGISTERED_ADDRESS
    third = request_for(R.THIRD_PARTY, Doc.JUMINHYO, channel=Channel.POST, identity=enclosed)
    assert decide(third, context()).handover is Handover.POST_TO_APPLICANT
    counter_copy = request_for(R.SELF, Doc.JUMINHYO, identity=enclosed)
    assert _code(decide(counter_copy, context())) == "identity_channel"


# ---------------------------------------------------------------------------- 委任状


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"signed_by_person": False}, "poa_unsigned"),
        ({"dated": None}, "poa_undated"),
        ({"dated": date(2026, 7, 2)}, "poa_undated"),
        ({"dated": date(2026, 1, 1)}, "poa_expired"),
        ({"agent_name": "別人　花子"}, "poa_agent_mismatch"),
        ({"scope": frozenset({Doc.KAZEI})}, "poa_scope"),
        ({"items": frozenset()}, "poa_items"),
    ],
)
def test_power_of_attorney_checks(change: dict[str, object], code: str) -> None:
    request = request_for(R.PROXY, Doc.JUMINHYO, frozenset({Item.MY_NUMBER}))
    assert request.power_of_attorney is not None
    poa = replace(request.power_of_attorney, **change)  # type: ignore[arg-type]
    decision = decide(replace(request, power_of_attorney=poa), context())
    assert _code(decision) == code
    assert decision.refusal is not None and decision.refusal.tell_applicant


def test_proxy_without_power_of_attorney_and_agent_name_spacing() -> None:
    bare = replace(request_for(R.PROXY, Doc.JUMINHYO), power_of_attorney=None)
    assert _code(decide(bare, context())) == "poa_missing"
    request = request_for(R.PROXY, Doc.JUMINHYO)
    assert request.power_of_attorney is not None
    spaced = replace(request.power_of_attorney, agent_name="鈴木 次郎")  # half-width space
    assert decide(replace(request, power_of_attorney=spaced), context()).issued


def test_proxy_my_number_copy_is_mailed_never_handed_over() -> None:
    decision = decide(request_for(R.PROXY, Doc.JUMINHYO, frozenset({Item.MY_NUMBER})), context())
    assert decision.issued
    assert decision.handover is Handover.POST_REGISTERED_ADDRESS
    assert any("郵送" in n for n in decision.notes)
    plain = decide(request_for(R.PROXY, Doc.JUMINHYO), context())
    assert plain.handover is Handover.COUNTER


# ---------------------------------------------------------------------------- items


def test_default_omissions() -> None:
    decision = decide(request_for(R.SELF, Doc.JUMINHYO), context())
    assert decision.items == frozenset()
    asked = frozenset({Item.HEAD_AND_RELATIONSHIP, Item.HONSEKI})
    assert decide(request_for(R.SELF, Doc.JUMINHYO, asked), context()).items == asked


def test_foreign_items_are_dropped_for_a_japanese_resident_with_a_note() -> None:
    asked = frozenset({Item.NATIONALITY, Item.HONSEKI})
    decision = decide(request_for(R.SELF, Doc.JUMINHYO, asked), context())
    assert decision.items == frozenset({Item.HONSEKI})
    assert decision.notes


def test_whole_household_in_statutory_order_four_a_sheet() -> None:
    request = request_for(R.HOUSEHOLD, Doc.JUMINHYO, whole_household=True)
    decision = decide(request, context())
    assert decision.subject_ids == ("A", "B", "C", "D", "E")  # 世帯主, 妻, children, 母
    assert decision.sheets == 2
    assert decision.fee is not None and decision.fee.payable == 300


def test_household_member_of_another_household_is_refused() -> None:
    stranger = Applicant(G.name, G.kana, G.birth_date, resident_id=G.id)
    request = request_for(R.HOUSEHOLD, Doc.JUMINHYO, applicant=stranger)
    assert _code(decide(request, context())) == "household_not_member"
    self_other = request_for(R.SELF, Doc.JUMINHYO, applicant=stranger)
    assert _code(decide(self_other, context())) == "self_not_subject"


def test_johyo_and_juminhyo_follow_the_record() -> None:
    own = Applicant(A.name, resident_id=A.id)
    living = request_for(R.SELF, Doc.JOHYO, subject_ids=("A",), applicant=own)
    assert _code(decide(living, context())) == "johyo_for_living"
    applicant = Applicant(F.name, resident_id=F.id)
    request = request_for(R.SELF, Doc.JUMINHYO, subject_ids=("F",), applicant=applicant)
    decision = decide(request, context())
    assert _code(decision) == "juminhyo_for_removed"
    assert decision.refusal is not None and "転出" in decision.refusal.reason


# ---------------------------------------------------------------------------- intake, stale


def test_pending_change_or_death_report_holds_issuance_back() -> None:
    received = NOW - timedelta(hours=2)
    intake = MemoryIntake([PendingReport("I1", TOWN_CODE, "B", ReportKind.DEATH, received)])
    household = request_for(R.SELF, Doc.JUMINHYO, whole_household=True)
    decision = decide(household, context(intake=intake))
    assert _code(decision) == "intake_pending"
    assert decision.refusal is not None and "死亡届" in decision.refusal.reason
    # A request taken for later mailing does not hold anything back.
    intake = MemoryIntake([PendingReport("I2", TOWN_CODE, "A", ReportKind.APPLICATION, received)])
    assert decide(household, context(intake=intake)).issued


def test_stale_registry_makes_third_party_and_professional_requests_intake_only() -> None:
    stale = context(registry_age=timedelta(hours=20))
    for requester in (R.THIRD_PARTY, R.PROFESSIONAL):
        decision = decide(request_for(requester, Doc.JUMINHYO), stale)
        assert decision.outcome is Outcome.INTAKE_ONLY
        assert _code(decision) == "intake_registry_stale"
    own = decide(request_for(R.SELF, Doc.JUMINHYO), stale)
    assert own.issued and own.stale


def test_intake_only_documents() -> None:
    for doc in (Doc.INKAN, Doc.RISAI, Doc.MENJO):
        decision = decide(request_for(R.SELF, doc), context())
        assert decision.outcome is Outcome.INTAKE_ONLY
        assert decision.fee is None


def test_copay_exemption_certificate_is_issued_only_while_declared() -> None:
    declared = replace(
        context(),
        copay_exemption=CopayExemption(
            "令和8年11月26日の地震", date(2026, 11, 26), date(2027, 2, 28)
        ),
    )
    member = request_for(R.SELF, Doc.MENJO, subject_ids=("A",))
    assert decide(member, declared).issued
    assert decide(member, context()).outcome is Outcome.INTAKE_ONLY
    assert _code(decide(request_for(R.THIRD_PARTY, Doc.MENJO, subject_ids=("A",)), declared)) in (
        "requester_not_entitled",
        "third_party_purpose",
    )
    uninsured = replace(declared, data=replace(declared.data, nhi={}))
    assert _code(decide(member, uninsured)) == "nhi_not_member"


def test_request_for_another_town_or_without_subject_is_an_error() -> None:
    with pytest.raises(RequestError):
        decide(request_for(R.SELF, Doc.JUMINHYO, town_code="15405"), context())
    with pytest.raises(RequestError):
        decide(request_for(R.SELF, Doc.JUMINHYO, subject_ids=()), context())
    with pytest.raises(RequestError):
        decide(request_for(R.SELF, Doc.KAZEI, subject_ids=("A", "B")), context())
    unknown = decide(request_for(R.SELF, Doc.JUMINHYO, subject_ids=("ZZ",)), context())
    assert _code(unknown) == "subject_unknown"


def test_context_refuses_naive_times() -> None:
    from shared.issuance.context import IssuanceContext

    ctx = context()
    with pytest.raises(RequestError):
        IssuanceContext(ctx.data, datetime(2026, 7, 1), ctx.now, ctx.now)


# ---------------------------------------------------------------------------- fees


def test_fees_and_reductions() -> None:
    self_copy = decide(request_for(R.SELF, Doc.JUMINHYO, copies=2), context())
    assert self_copy.fee is not None
    assert (self_copy.fee.gross, self_copy.fee.payable) == (600, 600)
    official = decide(request_for(R.OFFICIAL, Doc.JUMINHYO), context())
    assert official.fee is not None and official.fee.reduction.value == "公用"
    assert official.fee.payable == 0 and official.fee.gross == 300
    disaster = decide(request_for(R.SELF, Doc.JUMINHYO), context(disaster_fee_exemption=True))
    assert disaster.fee is not None and disaster.fee.reduction.value == "災害減免"
    assert disaster.fee.payable == 0
    assert _code(decide(request_for(R.SELF, Doc.JUMINHYO, copies=0), context())) == (
        "copies_invalid"
    )


def test_the_supervisors_table_lists_every_refusal_as_the_code_words_it() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "issuance-rules.md").read_text("utf-8")
    for code, (reason, tell) in CATALOGUE.items():
        assert reason and tell, code
        assert f"| `{code}` | {reason} | {tell} |" in doc, code


def test_household_member_b_can_ask_for_a() -> None:
    applicant = Applicant(B.name, resident_id=B.id)
    decision = decide(request_for(R.HOUSEHOLD, Doc.JUMINHYO, applicant=applicant), context())
    assert decision.issued and decision.subject_ids == (A.id,)


def test_protected_person_without_photo_or_by_post_is_told_to_come_with_photo_id() -> None:
    from test_issuance_town import person_block, town_data

    ctx = context(town_data((person_block("A"),)))
    two = Identity(
        IdentityMethod.TWO_DOCUMENTS,
        (IdDocumentKind.PENSION_BOOK, IdDocumentKind.HEALTH_INSURANCE),
    )
    decision = decide(request_for(R.SELF, Doc.JUMINHYO, identity=two), ctx)
    assert _code(decision) == "block_self_needs_photo"
    enclosed = Identity(IdentityMethod.ENCLOSED_COPY, (IdDocumentKind.DRIVERS_LICENSE,))
    by_post = request_for(R.SELF, Doc.JUMINHYO, channel=Channel.POST, identity=enclosed)
    assert _code(decide(by_post, ctx)) == "block_self_needs_photo"
    assert decide(request_for(R.SELF, Doc.JUMINHYO), ctx).issued


def test_power_of_attorney_dataclass_holds_no_identity_numbers() -> None:
    assert all("number" not in f.name for f in dataclasses.fields(PowerOfAttorney))
    assert all("number" not in f.name for f in dataclasses.fields(Applicant))


def test_a_my_number_insurance_holder_is_pointed_to_the_notice_not_the_card() -> None:
    """Decided by the rules, before a number is drawn: the card renderer would refuse
    a マイナ保険証 holder only after the 発行番号 was allocated."""
    ctx = context()
    holder = replace(ctx.data.nhi["A"], has_my_number_insurance=True)
    with_card = replace(ctx, data=replace(ctx.data, nhi={**ctx.data.nhi, "A": holder}))
    card = decide(request_for(R.SELF, Doc.SHIKAKU_KAKUNIN, subject_ids=("A",)), with_card)
    assert _code(card) == "nhi_has_my_number_insurance"
    assert card.refusal is not None and "資格情報のお知らせ" in card.refusal.tell_applicant
    assert decide(request_for(R.SELF, Doc.SHIKAKU_OSHIRASE, subject_ids=("A",)), with_card).issued
    # Without the マイナ保険証 the same member gets the card, not the notice.
    assert decide(request_for(R.SELF, Doc.SHIKAKU_KAKUNIN, subject_ids=("A",)), ctx).issued
