"""Registers: the 交付 register (one entry per copy), receipts, spoiled and reprinted
copies, the 用紙受払簿, the 日計表 per town and terminal, and cash taken by visiting clerks
booked to the stricken town."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_issuance_town import NOW, TOWN_CODE, context, request_for

from shared.issuance.decisions import decide
from shared.issuance.errors import RegisterError
from shared.issuance.fees import Reduction
from shared.issuance.office import Desk, IssuanceOffice, Operator
from shared.issuance.registers import (
    IssuanceRegister,
    Payment,
    daily_report,
    held_for_other_towns,
)
from shared.issuance.requests import DocumentKind, RequesterKind
from shared.storage import MemoryStorage

R = RequesterKind
Doc = DocumentKind
OWN_DESK = Desk("15307", "B01", "T1", "P1")
PARTNER_DESK = Desk("15405", "IZ1", "T9", "P2")  # 聖籠町's clerks at 出雲崎町's office
CLERK = Operator("seiro.sato", "15307")


def test_each_copy_gets_its_own_number_one_receipt_and_the_fee() -> None:
    storage = MemoryStorage()
    office = IssuanceOffice(storage, TOWN_CODE, "B01")
    ctx = context()
    decision = decide(request_for(R.SELF, Doc.JUMINHYO, copies=3), ctx)
    entries = office.issue(decision, ctx.data, OWN_DESK, CLERK, NOW)
    assert len({e.number for e in entries}) == 3
    assert len({e.receipt_number for e in entries}) == 1
    assert entries[0].receipt_number.startswith("R-20260701-15307-B01-")
    assert sum(e.fee_payable for e in entries) == 900
    assert all(e.payment is Payment.CASH for e in entries)
    assert [e.number for e in office.register.entries()] == [e.number for e in entries]
    # Stored as plain JSON through the storage seam, identity as kinds only.
    raw = storage.load(("issuance", TOWN_CODE, "register", entries[0].number))
    assert raw is not None
    record = json.loads(raw)
    assert record["identity_documents"] == ["運転免許証"]
    assert record["applicant_name"] == "山田　太郎"


def test_free_documents_take_no_receipt() -> None:
    office = IssuanceOffice(MemoryStorage(), TOWN_CODE, "B01")
    ctx = context()
    official = decide(request_for(R.OFFICIAL, Doc.JUMINHYO), ctx)
    (entry,) = office.issue(official, ctx.data, OWN_DESK, CLERK, NOW)
    assert (entry.receipt_number, entry.payment, entry.reduction) == (
        "",
        Payment.NOT_REQUIRED,
        Reduction.OFFICIAL,
    )
    assert entry.purpose.startswith("新発田市 税務課")


def test_refused_decision_cannot_be_recorded_and_numbers_are_not_rewritten() -> None:
    office = IssuanceOffice(MemoryStorage(), TOWN_CODE, "B01")
    ctx = context()
    refused = decide(request_for(R.THIRD_PARTY, Doc.KAZEI), ctx)
    with pytest.raises(RegisterError):
        office.issue(refused, ctx.data, OWN_DESK, CLERK, NOW)
    (entry,) = office.issue(
        decide(request_for(R.SELF, Doc.JUMINHYO), ctx), ctx.data, OWN_DESK, CLERK, NOW
    )
    with pytest.raises(RegisterError):
        office.register.record(entry)
    with pytest.raises(RegisterError):
        office.issue(
            decide(request_for(R.SELF, Doc.JUMINHYO), ctx), ctx.data, PARTNER_DESK, CLERK, NOW
        )


def test_spoiled_copy_is_voided_and_reprinted_under_a_new_number() -> None:
    office = IssuanceOffice(MemoryStorage(), TOWN_CODE, "B01")
    office.paper.receive(100, NOW - timedelta(days=1), "seiro.sato", "改ざん防止用紙 1箱")
    ctx = context()
    (entry,) = office.issue(
        decide(request_for(R.SELF, Doc.JUMINHYO), ctx), ctx.data, OWN_DESK, CLERK, NOW
    )
    with pytest.raises(RegisterError):
        office.reprint(entry.number, at=NOW, desk=OWN_DESK, operator=CLERK)
    office.spoil(entry.number, at=NOW, reason="紙詰まり", sheets=1, operator=CLERK)
    again = office.reprint(
        entry.number, at=NOW + timedelta(minutes=1), desk=OWN_DESK, operator=CLERK
    )
    office.paper.use(again.sheets, again.number, NOW, "seiro.sato")
    assert again.number != entry.number and again.reprint_of == entry.number
    assert [e.number for e in office.register.valid_entries()] == [again.number]
    assert office.paper.balance() == 98  # one spoiled, one used
    (line,) = daily_report(office.register.valid_entries(), NOW.date())
    assert (line.copies, line.collected) == (1, 300)


def test_daily_report_per_town_and_terminal_with_visiting_clerks_booked_to_their_town() -> None:
    storage = MemoryStorage()  # 聖籠町's register, synced from both boxes
    own = IssuanceOffice(storage, TOWN_CODE, "B01")
    visiting = IssuanceOffice(storage, TOWN_CODE, "IZ1")
    ctx = context(disaster_fee_exemption=False)
    for _ in range(2):
        own.issue(decide(request_for(R.SELF, Doc.JUMINHYO), ctx), ctx.data, OWN_DESK, CLERK, NOW)
    visiting.issue(decide(request_for(R.SELF, Doc.KAZEI), ctx), ctx.data, PARTNER_DESK, CLERK, NOW)
    visiting.issue(
        decide(request_for(R.OFFICIAL, Doc.JUMINHYO), ctx), ctx.data, PARTNER_DESK, CLERK, NOW
    )
    exempt = context(disaster_fee_exemption=True)
    visiting.issue(
        decide(request_for(R.SELF, Doc.JUMINHYO), exempt), exempt.data, PARTNER_DESK, CLERK, NOW
    )
    lines = daily_report(IssuanceRegister(storage, TOWN_CODE).valid_entries(), NOW.date())
    by_desk = {(line.box_id, line.terminal): line for line in lines}
    assert set(by_desk) == {("B01", "T1"), ("IZ1", "T9")}
    home, away = by_desk[("B01", "T1")], by_desk[("IZ1", "T9")]
    assert (home.copies, home.collected, home.visiting) == (2, 600, False)
    assert (away.copies, away.gross, away.waived, away.collected) == (3, 900, 600, 300)
    assert away.town_code == TOWN_CODE and away.visiting
    assert dict((r, n) for r, n, _ in away.by_reduction) == {
        Reduction.OFFICIAL: 1,
        Reduction.DISASTER: 1,
    }
    # The host's cashier sees what in the drawer is 聖籠町's, not 出雲崎町's revenue.
    assert held_for_other_towns(lines, "15405") == {TOWN_CODE: 300}
    assert held_for_other_towns(lines, TOWN_CODE) == {}


def test_drill_copies_stay_out_of_the_daily_report() -> None:
    from test_issuance_town import town_data

    office = IssuanceOffice(MemoryStorage(), TOWN_CODE, "B01")
    ctx = context(town_data(synthetic=True), drill=True)
    (entry,) = office.issue(
        decide(request_for(R.SELF, Doc.JUMINHYO), ctx), ctx.data, OWN_DESK, CLERK, NOW
    )
    assert entry.drill and entry.number.startswith("D")
    assert daily_report(office.register.valid_entries(), NOW.date()) == []
