"""Lists handed out: numbered and logged copies, 支援措置 masking on copies that leave the
office, and the 要支援者名簿 beyond consent only under the mayor's signed decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from nacl.signing import SigningKey, VerifyKey
from test_issuance_town import NOW, TOWN_CODE, household_block, person_block, town_data

from shared.issuance.errors import RegisterError, ReleaseRefused
from shared.issuance.lists import (
    MASKED_NAME,
    CopyState,
    ListCopyLog,
    ReleaseDecision,
    SignedDecision,
    Situation,
    print_safety_list,
    print_support_list,
    sign_release,
)
from shared.model import SupportNeed
from shared.storage import MemoryStorage

NEEDS = (
    SupportNeed("E", TOWN_CODE, "要介護3", "0254-00-0001", consented=True),
    SupportNeed("G", TOWN_CODE, "身体障害者手帳1級", "0254-00-0002", consented=False),
    SupportNeed("A", TOWN_CODE, "人工透析", "0254-00-0003", consented=False),
)


def _decision(**changes: object) -> ReleaseDecision:
    decision = ReleaseDecision(
        decision_id="R8-001",
        town_code=TOWN_CODE,
        decided_at=NOW - timedelta(hours=1),
        situation=Situation.STRUCK,
        disaster="令和8年7月1日 豪雨災害",
        especially_necessary=True,
        recipients=("聖籠町消防団", "民生委員"),
        official_name="星　隆",
        official_title="町長",
    )
    return replace(decision, **changes)  # type: ignore[arg-type]


def test_safety_list_copies_are_numbered_logged_and_collected() -> None:
    log = ListCopyLog(MemoryStorage(), TOWN_CODE, "B01")
    data = town_data()
    first, rows = print_safety_list(
        log,
        data,
        district="諏訪山",
        recipient="消防団第1分団",
        purpose="安否確認",
        leaves_office=True,
        at=NOW,
        clerk_id="seiro.sato",
    )
    second, _ = print_safety_list(
        log,
        data,
        district="",
        recipient="災害対策本部",
        purpose="安否確認",
        leaves_office=False,
        at=NOW,
        clerk_id="seiro.sato",
    )
    assert first.number == "L-15307-B01-000001" and second.number.endswith("000002")
    assert [r.resident_id for r in rows] == ["A", "B", "C", "D", "E"]
    assert {c.number for c in log.outstanding()} == {first.number, second.number}
    log.returned(first.number, NOW + timedelta(hours=5), "全頁返却")
    log.destroyed(second.number, NOW + timedelta(hours=6), "シュレッダー")
    assert log.outstanding() == []
    assert log.get(first.number).state is CopyState.RETURNED
    with pytest.raises(RegisterError):
        log.returned(first.number, NOW, "")
    with pytest.raises(RegisterError):
        print_safety_list(
            log,
            data,
            district="",
            recipient=" ",
            purpose="安否確認",
            leaves_office=True,
            at=NOW,
            clerk_id="x",
        )


def test_protected_people_are_masked_only_on_copies_leaving_the_office() -> None:
    log = ListCopyLog(MemoryStorage(), TOWN_CODE, "B01")
    data = town_data((person_block("B"),))
    copy, rows = print_safety_list(
        log,
        data,
        district="",
        recipient="消防団",
        purpose="安否確認",
        leaves_office=True,
        at=NOW,
        clerk_id="seiro.sato",
    )
    names = [r.name for r in rows]
    assert "山田　花子" not in names and names[-1] == MASKED_NAME
    masked = rows[-1]
    assert (masked.address, masked.birth_date, masked.resident_id) == ("", None, "")
    assert copy.masked == 1
    _, inside = print_safety_list(
        log,
        data,
        district="",
        recipient="住民課",
        purpose="安否確認",
        leaves_office=False,
        at=NOW,
        clerk_id="seiro.sato",
    )
    assert "山田　花子" in [r.name for r in inside]


def test_support_list_without_decision_is_consenting_people_only() -> None:
    log = ListCopyLog(MemoryStorage(), TOWN_CODE, "B01")
    copy, rows = print_support_list(
        log,
        NEEDS,
        town_data(),
        recipient="民生委員",
        purpose="平常時の見守り",
        at=NOW,
        clerk_id="seiro.sato",
    )
    assert [r.resident_id for r in rows] == ["E"]
    assert copy.decision_id == ""


def test_support_list_beyond_consent_needs_the_mayors_signed_decision() -> None:
    mayor = SigningKey.generate()
    signed = sign_release(_decision(), mayor)
    log = ListCopyLog(MemoryStorage(), TOWN_CODE, "B01")
    data = town_data((household_block("H1"),))
    copy, rows = print_support_list(
        log,
        NEEDS,
        data,
        recipient="聖籠町消防団",
        purpose="避難支援",
        at=NOW,
        clerk_id="seiro.sato",
        signed=signed,
        official_key=mayor.verify_key,
    )
    assert copy.decision_id == "R8-001" and copy.leaves_office
    assert [r.resident_id for r in rows if not r.masked] == ["G"]
    assert sum(r.masked for r in rows) == 2  # E and A live under the household block
    assert all(r.contact == "" for r in rows if r.masked)

    def refused(recipient: str, signed: SignedDecision, official_key: VerifyKey | None) -> None:
        with pytest.raises(ReleaseRefused):
            print_support_list(
                log,
                NEEDS,
                data,
                recipient=recipient,
                purpose="避難支援",
                at=NOW,
                clerk_id="seiro.sato",
                signed=signed,
                official_key=official_key,
            )

    refused(recipient="聖籠町消防団", signed=signed, official_key=SigningKey.generate().verify_key)
    tampered = replace(signed, decision=replace(signed.decision, recipients=("報道機関",)))
    refused(recipient="報道機関", signed=tampered, official_key=mayor.verify_key)
    refused(recipient="報道機関", signed=signed, official_key=mayor.verify_key)
    not_necessary = sign_release(_decision(especially_necessary=False), mayor)
    refused(recipient="聖籠町消防団", signed=not_necessary, official_key=mayor.verify_key)
    future = sign_release(_decision(decided_at=NOW + timedelta(hours=1)), mayor)
    refused(recipient="聖籠町消防団", signed=future, official_key=mayor.verify_key)
    other_town = sign_release(_decision(town_code="15405"), mayor)
    refused(recipient="聖籠町消防団", signed=other_town, official_key=mayor.verify_key)
    refused(recipient="聖籠町消防団", signed=signed, official_key=None)
    assert len(log.copies()) == 1  # refusals leave no copy behind
