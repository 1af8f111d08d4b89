"""Reconciliation after a scripted day of issuing, then a new export with a death and a
new 支援措置 — and a move dated after the day, which must *not* be reported.

Day 1 (2026-11-26, 聖籠町, synthetic data read back from a real export folder, registers
in a real SQLite file through the storage seam):

    n1  住民票 of P (個人票), asked by P's household member      → P died that morning
    n2  住民票 世帯全員 of P's household, same member            → lists P
    n3  課税証明書 of P by a 任意代理人                          → P died
    n4  住民票 of Q for a third party — jammed, voided           (voided: not reported)
    n4' its reprint                                              → Q's block started that day
    n5  住民票 of Q for Q herself, photo ID at the counter       (allowed under the block)
    n6  住民票 of S for S                                        (S moves the next day)
    n7  住民票 of S, 職務上請求 by a 司法書士                     (S moves the next day)

Day 2 export: P died on 2026-11-26, a block on Q from 2026-11-26, S's household moved on
2026-11-27. The report must list exactly n1, n2, n3 and n4'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from cloud.synthetic import generate
from renkei.cli import main
from shared.export_csv import read_town, write_town
from shared.issuance.context import JST, IssuanceContext
from shared.issuance.data import TownData
from shared.issuance.decisions import decide
from shared.issuance.intake import PendingReport, ReportKind, StoredIntake
from shared.issuance.office import Desk, IssuanceOffice, Operator
from shared.issuance.reconcile import FindingKind, ReconciliationReport, reconcile_store, render
from shared.issuance.registers import CashBook, CashCount, IssuanceEntry
from shared.issuance.requests import (
    Applicant,
    DocumentKind,
    IdDocumentKind,
    Identity,
    IdentityMethod,
    PowerOfAttorney,
    Profession,
    ProfessionalRequest,
    Request,
    RequesterKind,
    ThirdPartyGround,
    ThirdPartyPurpose,
)
from shared.model import FilingStatus, Removal, RemovalReason, Resident, SupportBlock, TownExport
from shared.storage import SqliteStorage

TOWN = "15307"
DAY = date(2026, 11, 26)
PHOTO = Identity(IdentityMethod.PHOTO_ID, (IdDocumentKind.MY_NUMBER_CARD,))
DESK1 = Desk(TOWN, "B01", "T1", "P1")
DESK2 = Desk(TOWN, "B01", "T2", "P1")
CLERK = Operator("seiro.sato", TOWN)


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 26, hour, minute, tzinfo=JST)


def _pick(export: TownExport) -> tuple[Resident, Resident, Resident, Resident]:
    """P (with a household member M and a 2026 assessment), Q and S in other households;
    nobody under an existing block."""
    protected = {rid for b in export.support_blocks for rid in b.protected_ids}
    living = [r for r in export.residents if r.removal is None and r.id not in protected]
    by_household: dict[str, list[Resident]] = {}
    for r in living:
        by_household.setdefault(r.household_id, []).append(r)
    assessed = {
        a.resident_id
        for a in export.tax_assessments
        if a.fiscal_year == 2026 and a.filing is not FilingStatus.NOT_FILED
    }
    adults = [r for r in living if r.birth_date <= date(2000, 1, 1)]
    p = next(
        r
        for r in adults
        if r.id in assessed
        and r.relationship != "世帯主"
        and r.became_resident < date(2026, 1, 1)
        and len(by_household[r.household_id]) >= 2
        and all(m.id not in protected for m in by_household[r.household_id])
    )
    m = next(x for x in by_household[p.household_id] if x.id != p.id and x in adults)
    others = [r for r in adults if r.household_id != p.household_id]
    q = others[0]
    s = next(r for r in others if r.household_id != q.household_id)
    return p, m, q, s


def _ctx(data: TownData, at: datetime) -> IssuanceContext:
    return IssuanceContext(data, at, at - timedelta(minutes=30), at - timedelta(minutes=30))


def _request(
    subject: Resident, requester: RequesterKind, applicant: Applicant, **kw: object
) -> Request:
    fields: dict[str, object] = dict(
        town_code=TOWN,
        document=DocumentKind.JUMINHYO,
        subject_ids=(subject.id,),
        requester=requester,
        applicant=applicant,
        identity=PHOTO,
    )
    return Request(**(fields | kw))  # type: ignore[arg-type]


def _me(r: Resident) -> Applicant:
    return Applicant(r.name, r.kana, r.birth_date, "", "0254-00-1234", resident_id=r.id)


@dataclass(frozen=True)
class Day:
    store: Path
    export: Path
    numbers: dict[str, str]
    people: tuple[Resident, Resident, Resident, Resident]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    root = tmp_path_factory.mktemp("reconcile")
    generated = generate(11, {"15307": 150, "15405": 10, "15581": 10})[0]
    write_town(generated, root / "day1" / TOWN)
    day1 = read_town(root / "day1" / TOWN)  # what the boxes hold: legacy 外字 mapped
    data = TownData.from_export(day1)
    p, m, q, s = _pick(day1)

    store_path = root / "registers.sqlite"
    storage = SqliteStorage(store_path)
    office = IssuanceOffice(storage, TOWN, "B01")
    office.paper.receive(500, _at(8), CLERK.clerk_id, "改ざん防止用紙")
    numbers: dict[str, str] = {}

    def issue(name: str, request: Request, at: datetime, desk: Desk = DESK1) -> IssuanceEntry:
        decision = decide(request, _ctx(data, at))
        assert decision.issued, (name, decision.refusal)
        (entry,) = office.issue(decision, data, desk, CLERK, at)
        numbers[name] = entry.number
        return entry

    def printed(entry: IssuanceEntry, at: datetime) -> None:
        office.paper.use(entry.sheets, entry.number, at, CLERK.clerk_id)

    agent = Applicant("代理　人", "ダイリ　ニン", date(1970, 1, 1), "新潟市北区1-1", "025-000-1")
    poa = PowerOfAttorney(True, date(2026, 11, 20), agent.name, frozenset(DocumentKind))
    creditor = Applicant(
        "債権　者", "サイケン　シャ", date(1960, 1, 1), "新潟市西区2-2", "025-000-2"
    )
    scrivener = Applicant("司法　書士", "シホウ　ショシ", date(1965, 1, 1), "新潟市中央区3-3")
    entries = [
        issue("n1", _request(p, RequesterKind.HOUSEHOLD, _me(m)), _at(10)),
        issue("n2", _request(p, RequesterKind.HOUSEHOLD, _me(m), whole_household=True), _at(10, 5)),
        issue(
            "n3",
            _request(
                p,
                RequesterKind.PROXY,
                agent,
                document=DocumentKind.KAZEI,
                fiscal_year=2026,
                power_of_attorney=poa,
            ),
            _at(11),
            DESK2,
        ),
    ]
    third = _request(
        q,
        RequesterKind.THIRD_PARTY,
        creditor,
        third_party=ThirdPartyPurpose(ThirdPartyGround.OWN_RIGHTS, "貸金返還請求", "新潟地裁"),
    )
    jammed = issue("n4", third, _at(13))
    office.spoil(jammed.number, at=_at(13, 1), reason="紙詰まり", sheets=1, operator=CLERK)
    reprint = office.reprint(jammed.number, at=_at(13, 2), desk=DESK1, operator=CLERK)
    numbers["n4r"] = reprint.number
    entries.append(reprint)
    entries.append(issue("n5", _request(q, RequesterKind.SELF, _me(q)), _at(14)))
    entries.append(issue("n6", _request(s, RequesterKind.SELF, _me(s)), _at(15)))
    professional = ProfessionalRequest(
        Profession.JUDICIAL_SCRIVENER, "新潟第1号", "Z-0001", "相続登記", "新潟地方法務局"
    )
    entries.append(
        issue(
            "n7",
            _request(s, RequesterKind.PROFESSIONAL, scrivener, professional=professional),
            _at(15, 30),
            DESK2,
        )
    )
    for entry in entries:
        printed(entry, entry.issued_at)
    office.paper.count(office.paper.balance(), _at(17), CLERK.clerk_id)

    # Closing: T1 is counted right, T2 is 300 yen short.
    cash = CashBook(storage, TOWN)
    expected = {"T1": 0, "T2": 0}
    for entry in office.register.valid_entries():
        expected[entry.terminal] += entry.fee_payable
    cash.record(CashCount(TOWN, DAY, "B01", "T1", expected["T1"], _at(17), CLERK.clerk_id))
    cash.record(CashCount(TOWN, DAY, "B01", "T2", expected["T2"] - 300, _at(17), CLERK.clerk_id))
    # Intake taken during the day that nobody has processed yet.
    StoredIntake(storage, TOWN).add(
        PendingReport("IN-1", TOWN, s.id, ReportKind.CHANGE, _at(16), "転居届（町内）")
    )
    storage.close()

    # Day 2 export: P died on day 1, a block on Q from day 1, S's household moved on day 2.
    died = replace(p, removal=Removal(RemovalReason.DIED, DAY))
    moved_on = date(2026, 11, 27)
    residents = [
        died
        if r.id == p.id
        else replace(r, address_set=moved_on)
        if r.household_id == s.household_id and r.removal is None
        else r
        for r in day1.residents
    ]
    households = [
        replace(h, address="9999番地") if h.id == s.household_id else h for h in day1.households
    ]
    block = SupportBlock(
        "15307-B9001",
        TOWN,
        (q.id,),
        "",
        "加害　者",
        "カガイ　シャ",
        date(1970, 5, 5),
        DAY,
        date(2027, 11, 25),
    )
    day2 = replace(
        day1,
        residents=residents,
        households=households,
        support_blocks=[*day1.support_blocks, block],
        exported_at="2026-11-27T02:00:00+09:00",
    )
    write_town(day2, root / "day2" / TOWN)
    return Day(store_path, root / "day2", numbers, (p, m, q, s))


def _report(day: Day) -> ReconciliationReport:
    data = TownData.from_export(read_town(day.export / TOWN))
    storage = SqliteStorage(day.store)
    try:
        return reconcile_store(storage, data, datetime(2026, 11, 28, 9, 0, tzinfo=JST))
    finally:
        storage.close()


def test_reconciliation_lists_exactly_the_affected_documents(day: Day) -> None:
    numbers = day.numbers
    p, _m, q, _s = day.people
    report = _report(day)
    affected = {doc.number: doc for doc in report.affected}
    assert set(affected) == {numbers["n1"], numbers["n2"], numbers["n3"], numbers["n4r"]}
    assert report.documents_checked == 7  # the voided n4 is not a document
    for name in ("n1", "n2", "n3"):
        kinds = {(f.kind, f.resident_id) for f in affected[numbers[name]].findings}
        assert kinds == {(FindingKind.DEATH, p.id)}, name
    block_doc = affected[numbers["n4r"]]
    assert {(f.kind, f.resident_id) for f in block_doc.findings} == {(FindingKind.BLOCK, q.id)}
    roles = [c.role for c in block_doc.contacts]
    assert roles == ["請求者（第三者）", "支援措置対象者"]
    assert block_doc.contacts[0].name == "債権　者" and "025-000-2" in block_doc.contacts[0].how
    assert "郵送はしない" in block_doc.contacts[1].how


def test_reconciliation_books(day: Day) -> None:
    report = _report(day)
    assert [r.id for r in report.pending] == ["IN-1"]
    by_terminal = {c.terminal: c for c in report.cash}
    assert by_terminal["T1"].ok and not by_terminal["T2"].ok
    assert by_terminal["T2"].expected - (by_terminal["T2"].counted or 0) == 300
    (paper,) = report.paper
    assert paper.ok and paper.spoiled == 1
    assert paper.used_booked == paper.used_by_register
    assert not report.clean
    text = render(report)
    assert "後の記録で誤りが判明した交付 4 件" in text and "不一致" in text


def test_cli_prints_the_report_and_json(day: Day, capsys: pytest.CaptureFixture[str]) -> None:
    numbers = day.numbers
    args = [
        "reconcile",
        TOWN,
        "--store",
        str(day.store),
        "--export",
        str(day.export),
        "--at",
        "2026-11-28T09:00:00+09:00",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("n1", "n2", "n3", "n4r"):
        assert numbers[name] in out
    for name in ("n4", "n5", "n6", "n7"):
        assert numbers[name] not in out.split("■ 未処理の受付")[0]
    assert main([*args, "--strict"]) == 3
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {d["number"] for d in report["affected"]} == {
        numbers["n1"],
        numbers["n2"],
        numbers["n3"],
        numbers["n4r"],
    }
    assert report["clean"] is False


def test_cli_reports_unreadable_inputs(
    tmp_path: Path, day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = [
        "reconcile",
        TOWN,
        "--store",
        str(tmp_path / "none.sqlite"),
        "--export",
        str(day.export),
    ]
    assert main(missing) == 1
    assert "no register store" in capsys.readouterr().err
    wrong_town = [
        "reconcile",
        "15405",
        "--store",
        str(day.store),
        "--export",
        str(day.export),
    ]
    assert main(wrong_town) == 1
    naive = [
        "reconcile",
        TOWN,
        "--store",
        str(day.store),
        "--export",
        str(day.export),
        "--at",
        "2026-11-28T09:00",
    ]
    assert main(naive) == 1


# ---------------------------------------------------------------------------- unit cases


def test_changes_dated_after_issue_are_not_reported_undated_ones_are() -> None:
    from test_issuance_town import NOW, RESIDENTS, context, request_for, town_data

    from shared.issuance.reconcile import affected_documents
    from shared.storage import MemoryStorage

    office = IssuanceOffice(MemoryStorage(), TOWN, "B01")
    ctx = context()
    request = request_for(RequesterKind.SELF, DocumentKind.JUMINHYO, whole_household=True)
    (entry,) = office.issue(decide(request, ctx), ctx.data, DESK1, CLERK, NOW)

    def later(changes: dict[str, dict[str, object]], extra: tuple[Resident, ...] = ()) -> TownData:
        people = [replace(r, **changes.get(r.id, {})) for r in RESIDENTS]  # type: ignore[arg-type]
        base = town_data()
        return TownData.build(
            base.town,
            [*people, *extra],
            base.households.values(),
            (),
        )

    assert affected_documents([entry], later({})) == []
    # A move of B dated the day after: the copy was right when issued.
    moved = later({"B": {"address_set": NOW.date() + timedelta(days=1)}})
    assert affected_documents([entry], moved) == []
    # B's name corrected (the record does not date it): reported for the clerk to judge.
    (doc,) = affected_documents([entry], later({"B": {"name": "山田　華子"}}))
    assert [(f.kind, f.resident_id) for f in doc.findings] == [(FindingKind.CHANGE, "B")]
    assert "変更日不明" in doc.findings[0].detail
    # A baby born the week before, registered only now: the 世帯全員 copy missed her.
    baby = replace(
        RESIDENTS[0],
        id="X",
        name="山田　陽",
        relationship="子",
        birth_date=NOW.date() - timedelta(days=7),
        became_resident=NOW.date() - timedelta(days=7),
    )
    (doc,) = affected_documents([entry], later({}, (baby,)))
    assert [(f.kind, f.resident_id) for f in doc.findings] == [(FindingKind.CHANGE, "X")]
