"""One town's issuing office on one box: turns an ISSUE decision into numbered copies.

Flow at the counter::

    decision = decide(request, ctx)                    # pure
    entries = office.issue(decision, ctx.data, desk, operator, at)   # numbers, register
    ... print each entry's copy; office.paper.use(sheets, number, ...) per copy fed ...
    on a jam:  office.spoil(number, ...)  then  office.reprint(number, ...)

`issue` allocates one 発行番号 per copy and writes the register entries *before*
printing, so a number that reached paper is always in the register; the fee and the
receipt go with the copies (one receipt per request). A spoiled copy keeps its entry, its
number voided and its sheets booked as spoiled; the reprint is a new entry with a new
number that points back with `reprint_of` and carries the fee instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from shared.storage import Storage

from .basis import Scope, subject_basis
from .context import JST
from .data import TownData
from .decisions import Decision
from .errors import RegisterError
from .fees import Reduction
from .numbering import IssueNumber, NumberAllocator, VoidedNumber
from .registers import (
    IssuanceEntry,
    IssuanceRegister,
    PaperRegister,
    Payment,
    ReceiptBook,
)
from .requests import Request


@dataclass(frozen=True, slots=True)
class Desk:
    """Where a copy is printed: the office (town) it stands in, the box, terminal, printer."""

    host_town_code: str
    box_id: str
    terminal: str
    printer: str


@dataclass(frozen=True, slots=True)
class Operator:
    """The clerk at the desk, and the town whose clerk they are."""

    clerk_id: str
    town_code: str


def _purpose(request: Request) -> str:
    if request.third_party is not None:
        t = request.third_party
        return f"{t.ground.value}：{t.purpose}" + (
            f"（提出先 {t.submitted_to}）" if t.submitted_to else ""
        )
    if request.professional is not None:
        p = request.professional
        return f"{p.purpose}（提出先 {p.submitted_to}）"
    if request.official is not None:
        o = request.official
        return f"{o.agency} {o.officer}：{o.purpose}（根拠 {o.legal_basis}）"
    return ""


def _professional(request: Request) -> str:
    p = request.professional
    if p is None:
        return ""
    return f"{p.profession.value} 登録番号{p.registration} 請求書{p.form_serial}"


class IssuanceOffice:
    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self.town_code = town_code
        self.box_id = box_id
        self.numbers = NumberAllocator(storage, town_code, box_id)
        self.register = IssuanceRegister(storage, town_code)
        self.receipts = ReceiptBook(storage, town_code, box_id)
        self.paper = PaperRegister(storage, town_code, box_id)

    def issue(
        self, decision: Decision, data: TownData, desk: Desk, operator: Operator, at: datetime
    ) -> list[IssuanceEntry]:
        request = decision.request
        if not decision.issued or decision.fee is None:
            raise RegisterError("交付の決定がない請求は交付簿に記録できません。")
        if request.town_code != self.town_code or data.town.code != self.town_code:
            raise RegisterError("この町の交付簿ではありません。")
        if desk.box_id != self.box_id:
            raise RegisterError(f"この交付簿は機器 {self.box_id} のものです。")
        day = at.astimezone(JST).date()
        fee = decision.fee
        paying = fee.reduction is Reduction.NONE and fee.payable > 0
        receipt = self.receipts.next(day) if paying else ""
        salt = secrets.token_bytes(16)
        basis = tuple(
            subject_basis(data.residents[rid], Scope.of(request), decision.items, data, salt)
            for rid in decision.subject_ids
        )
        entries = []
        for _ in range(request.copies):
            number = self.numbers.allocate(day, desk.terminal, desk.printer, drill=decision.sample)
            entry = IssuanceEntry(
                number=str(number),
                town_code=self.town_code,
                issued_at=at,
                box_id=desk.box_id,
                terminal=desk.terminal,
                printer=desk.printer,
                host_town_code=desk.host_town_code,
                clerk_id=operator.clerk_id,
                clerk_town_code=operator.town_code,
                document=request.document,
                subject_ids=decision.subject_ids,
                whole_household=request.whole_household,
                items=decision.items,
                requester=request.requester,
                applicant_name=request.applicant.name,
                applicant_address=request.applicant.address,
                applicant_phone=request.applicant.phone,
                applicant_resident_id=request.applicant.resident_id,
                identity_method=request.identity.method,
                identity_documents=request.identity.documents,
                identity_flagged=decision.identity_flagged,
                channel=request.channel,
                handover=decision.handover,
                purpose=_purpose(request),
                professional=_professional(request),
                sheets=decision.sheets,
                fee_unit=fee.unit,
                fee_gross=fee.unit,
                reduction=fee.reduction,
                fee_payable=fee.unit if paying else 0,
                payment=Payment.CASH if paying else Payment.NOT_REQUIRED,
                receipt_number=receipt,
                drill=decision.sample,
                stale=decision.stale,
                registry_checked_at=decision.registry_checked_at,
                blocks_checked_at=decision.blocks_checked_at,
                blocks_seen=decision.blocks_seen,
                fiscal_year=request.fiscal_year,
                tax_kind=request.tax_kind,
                vehicle_id=request.vehicle_id,
                salt=salt.hex(),
                basis=basis,
            )
            self.register.record(entry)
            entries.append(entry)
        return entries

    def spoil(
        self, number: str, *, at: datetime, reason: str, sheets: int, operator: Operator
    ) -> VoidedNumber:
        """A jammed or misprinted copy: void its number and book the sheets as spoiled."""
        if self.register.get(number) is None:
            raise RegisterError(f"発行番号 {number} は交付簿にありません。")
        voided = self.numbers.void(
            IssueNumber.parse(number),
            at=at,
            reason=reason,
            sheets=sheets,
            clerk_id=operator.clerk_id,
        )
        self.paper.spoil(sheets, number, at, operator.clerk_id, reason)
        return voided

    def reprint(
        self, number: str, *, at: datetime, desk: Desk, operator: Operator
    ) -> IssuanceEntry:
        """A new copy, with a new number, in place of a voided one."""
        old = self.register.get(number)
        if old is None or number not in self.register.voided():
            raise RegisterError(f"発行番号 {number} は無効にされていないため再印刷できません。")
        fresh = self.numbers.allocate(
            at.astimezone(JST).date(), desk.terminal, desk.printer, drill=old.drill
        )
        entry = replace(
            old,
            number=str(fresh),
            issued_at=at,
            terminal=desk.terminal,
            printer=desk.printer,
            clerk_id=operator.clerk_id,
            clerk_town_code=operator.town_code,
            reprint_of=number,
        )
        self.register.record(entry)
        return entry
