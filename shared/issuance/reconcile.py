"""Reconciliation after recovery: what went out wrong, what is still waiting, and do the
books add up.

After a disaster the town's counters ran on the boxes, maybe on stale data, maybe at a
partner's office. When the core system is back and exports again, the town needs, per
town (BRIEF §4):

1. **documents issued from data that a later change, death or block made wrong**, each
   with the people to contact —
   - death: a subject's 除票 for death dated on or before the day of issue;
   - change: a printed field that differs now, where the change took effect on or before
     the day of issue (or the record does not date it — then the clerk judges); a
     世帯全員 copy that missed a member who was already there;
   - block: a 支援措置 active on the day of issue that the issuing box did not have, and
     under which this copy would have been refused (the protected person's own copy at
     the counter is not affected);
2. **intake still to process** (reports and intake-only requests);
3. **fees against cash** per day, box and terminal;
4. **paper against the register** per box: sheets booked as used against copies in the
   register, and the book balance against the last stock count.

Drill copies and voided numbers are left out of 1, 3 and 4 (a spoiled copy's sheets are
booked as spoiled, and its reprint is the copy that counts).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from shared.model import RemovalReason, Resident, SupportBlock
from shared.storage import Storage

from .basis import Scope, changed_fields, effective_date
from .blocks import is_adversary, is_protected_side, newly_covering, protected_handover
from .context import JST
from .data import TownData
from .intake import PendingReport, StoredIntake
from .numbering import voided_numbers
from .registers import (
    CashBook,
    CashCount,
    IssuanceEntry,
    IssuanceRegister,
    PaperEntry,
    PaperMovement,
    PaperRegister,
    Payment,
    paper_boxes,
)
from .requests import Applicant, Identity

FIELD_LABELS = {
    "name": "氏名",
    "kana": "フリガナ",
    "birth_date": "生年月日",
    "sex": "性別",
    "address": "住所",
    "address_set": "住所を定めた年月日",
    "became_resident": "住民となった年月日",
    "notified": "届出年月日",
    "previous_address": "転入前住所",
    "head_and_relationship": "世帯主の氏名及び続柄",
    "honseki": "本籍・筆頭者",
    "juminhyo_code": "住民票コード",
    "my_number": "個人番号",
    "foreign": "国籍・在留資格等",
    "assessment": "課税内容",
    "nhi": "国民健康保険の資格",
    "removal": "除票",
}


class FindingKind(enum.StrEnum):
    DEATH = "死亡"
    BLOCK = "支援措置"
    CHANGE = "記載事項の変更"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    resident_id: str
    detail: str
    name: str = ""  # the person's current name, for the supervisor reading the report


@dataclass(frozen=True, slots=True)
class Contact:
    role: str
    name: str
    how: str


@dataclass(frozen=True, slots=True)
class AffectedDocument:
    number: str
    issued_at: datetime
    document: str
    subject_ids: tuple[str, ...]
    requester: str
    findings: tuple[Finding, ...]
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class CashLine:
    day: date
    box_id: str
    terminal: str
    expected: int
    counted: int | None

    @property
    def ok(self) -> bool:
        return self.counted == self.expected


@dataclass(frozen=True, slots=True)
class PaperLine:
    box_id: str
    used_booked: int  # 用紙受払簿: sheets booked as used
    used_by_register: int  # sheets of the copies in the 交付 register
    spoiled: int
    balance: int  # book balance now
    counted: int | None  # last stock count
    balance_at_count: int | None  # book balance when it was counted

    @property
    def ok(self) -> bool:
        counts_match = self.counted is None or self.counted == self.balance_at_count
        return self.used_booked == self.used_by_register and counts_match


@dataclass(frozen=True)
class ReconciliationReport:
    town_code: str
    town_name: str
    generated_at: datetime
    affected: tuple[AffectedDocument, ...]
    pending: tuple[PendingReport, ...]
    cash: tuple[CashLine, ...]
    paper: tuple[PaperLine, ...]
    documents_checked: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return (
            not self.affected
            and not self.pending
            and all(c.ok for c in self.cash)
            and all(p.ok for p in self.paper)
        )


# ---------------------------------------------------------------------------- documents


def _field_finding(field_name: str, person: Resident, data: TownData, day: date) -> Finding | None:
    when = effective_date(field_name, person, data)
    if when is not None and when > day:
        return None  # the change came after the copy: it was right when issued
    if field_name == "removal" and person.removal is not None:
        removal = person.removal
        kind = FindingKind.DEATH if removal.reason is RemovalReason.DIED else FindingKind.CHANGE
        detail = f"{removal.reason.value}（{removal.date.isoformat()}）"
        return Finding(kind, person.id, detail, person.name)
    label = FIELD_LABELS.get(field_name.split(".")[0], field_name)
    if field_name.startswith("installment."):
        label = f"納付状況（{field_name.removeprefix('installment.')}）"
    dated = f"（{when.isoformat()}から）" if when else "（変更日不明・要確認）"
    return Finding(
        FindingKind.CHANGE, person.id, f"「{label}」が変わっています{dated}", person.name
    )


def _would_refuse(entry: IssuanceEntry, typed: Sequence[SupportBlock]) -> bool:
    applicant = Applicant(entry.applicant_name)
    if any(is_adversary(applicant, b) for b in typed):
        return True
    if not is_protected_side(entry.requester, entry.applicant_resident_id, typed):
        return True
    identity = Identity(entry.identity_method, entry.identity_documents)
    return not protected_handover(entry.channel, identity)


def _check_entry(entry: IssuanceEntry, data: TownData) -> list[Finding]:
    day = entry.day
    scope = Scope(entry.document, entry.fiscal_year, entry.tax_kind, entry.vehicle_id)
    salt = bytes.fromhex(entry.salt)
    bases = {b.resident_id: b for b in entry.basis}
    findings: list[Finding] = []
    for rid in entry.subject_ids:
        person = data.residents.get(rid)
        if person is None:
            findings.append(Finding(FindingKind.CHANGE, rid, "記録が見つかりません（要確認）"))
            continue
        basis = bases.get(rid)
        if basis is None:
            continue
        for name in changed_fields(basis, person, scope, entry.items, data, salt):
            found = _field_finding(name, person, data, day)
            if found:
                findings.append(found)
    new_blocks = newly_covering(entry.subject_ids, data.blocks, entry.blocks_seen, day)
    if new_blocks and _would_refuse(entry, new_blocks):
        for block in new_blocks:
            for rid in sorted(set(block.protected_ids) & set(entry.subject_ids)):
                person = data.residents.get(rid)
                findings.append(
                    Finding(
                        FindingKind.BLOCK,
                        rid,
                        f"交付時に未反映の支援措置 {block.id}（{block.start.isoformat()}から）",
                        person.name if person else "",
                    )
                )
    if entry.whole_household and entry.subject_ids:
        first = data.residents.get(entry.subject_ids[0])
        if first is not None:
            for member in data.members_of(first.household_id, living_only=False):
                was_there = member.became_resident <= day and (
                    member.removal is None or member.removal.date > day
                )
                if was_there and member.id not in entry.subject_ids:
                    findings.append(
                        Finding(
                            FindingKind.CHANGE,
                            member.id,
                            "世帯全員の写しに記載のない世帯員",
                            member.name,
                        )
                    )
    return findings


def _contacts(entry: IssuanceEntry, findings: Sequence[Finding], data: TownData) -> list[Contact]:
    how = " ".join(x for x in (entry.applicant_address, entry.applicant_phone) if x)
    contacts = [
        Contact(
            f"請求者（{entry.requester.value}）",
            entry.applicant_name,
            (how or "連絡先未記録：交付簿の記録から確認") + "　交付した写しの回収・差し替えを依頼",
        )
    ]
    for rid in sorted({f.resident_id for f in findings if f.kind is FindingKind.BLOCK}):
        person = data.residents.get(rid)
        contacts.append(
            Contact(
                "支援措置対象者",
                person.name if person else rid,
                "支援措置の担当課から連絡（住所地への郵送はしない）。"
                f"交付先：{entry.applicant_name}（{entry.requester.value}）",
            )
        )
    return contacts


def affected_documents(entries: Iterable[IssuanceEntry], data: TownData) -> list[AffectedDocument]:
    """Copies (valid, live) that the current data shows to have been wrong when issued."""
    found = []
    for entry in entries:
        if entry.drill:
            continue
        findings = _check_entry(entry, data)
        if findings:
            found.append(
                AffectedDocument(
                    entry.number,
                    entry.issued_at,
                    entry.document.label,
                    entry.subject_ids,
                    entry.requester.value,
                    tuple(findings),
                    tuple(_contacts(entry, findings, data)),
                )
            )
    return found


# ---------------------------------------------------------------------------- books


def cash_lines(entries: Iterable[IssuanceEntry], counts: Iterable[CashCount]) -> list[CashLine]:
    expected: dict[tuple[date, str, str], int] = defaultdict(int)
    for e in entries:
        if not e.drill and e.payment is Payment.CASH:
            expected[(e.day, e.box_id, e.terminal)] += e.fee_payable
    counted = {(c.day, c.box_id, c.terminal): c.counted for c in counts}
    keys = sorted(expected.keys() | counted.keys())
    return [
        CashLine(d, b, t, expected.get((d, b, t), 0), counted.get((d, b, t))) for d, b, t in keys
    ]


def paper_line(
    box_id: str, movements: Sequence[PaperEntry], entries: Iterable[IssuanceEntry]
) -> PaperLine:
    balance = used = spoiled = 0
    counted: int | None = None
    at_count: int | None = None
    for m in sorted(movements, key=lambda m: m.seq):
        if m.movement is PaperMovement.RECEIVED:
            balance += m.sheets
        elif m.movement is PaperMovement.USED:
            balance -= m.sheets
            used += m.sheets
        elif m.movement is PaperMovement.SPOILED:
            balance -= m.sheets
            spoiled += m.sheets
        else:
            counted, at_count = m.sheets, balance
    by_register = sum(e.sheets for e in entries if e.box_id == box_id and not e.drill)
    return PaperLine(box_id, used, by_register, spoiled, balance, counted, at_count)


def reconcile(
    data: TownData,
    *,
    entries: Sequence[IssuanceEntry],
    pending: Iterable[PendingReport],
    cash_counts: Iterable[CashCount],
    paper: Mapping[str, Sequence[PaperEntry]],
    now: datetime,
) -> ReconciliationReport:
    """The report for `data.town` from the register's valid (non-voided) entries."""
    code = data.town.code
    live = [e for e in entries if e.town_code == code]
    return ReconciliationReport(
        town_code=code,
        town_name=data.town.name,
        generated_at=now,
        affected=tuple(affected_documents(live, data)),
        pending=tuple(sorted(pending, key=lambda r: (r.received_at, r.id))),
        cash=tuple(cash_lines(live, cash_counts)),
        paper=tuple(paper_line(box, moves, live) for box, moves in sorted(paper.items())),
        documents_checked=sum(1 for e in live if not e.drill),
    )


def reconcile_store(storage: Storage, data: TownData, now: datetime) -> ReconciliationReport:
    """Everything the town's registers hold in `storage` against the current `data`."""
    code = data.town.code
    register = IssuanceRegister(storage, code)
    void = {v.number for v in voided_numbers(storage, code)}
    entries = [e for e in register.entries() if e.number not in void]
    paper = {
        box: PaperRegister(storage, code, box).movements() for box in paper_boxes(storage, code)
    }
    return reconcile(
        data,
        entries=entries,
        pending=StoredIntake(storage, code).pending(),
        cash_counts=CashBook(storage, code).counts(),
        paper=paper,
        now=now,
    )


# ---------------------------------------------------------------------------- text


def _yen(amount: int | None) -> str:
    return "未計数" if amount is None else f"{amount:,}円"


def render(report: ReconciliationReport) -> str:
    """The report as a supervisor reads it (Japanese, plain text)."""
    at = report.generated_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"照合報告 {report.town_name}（{report.town_code}） {at} 作成",
        f"確認した交付記録 {report.documents_checked} 件",
        "",
        f"■ 後の記録で誤りが判明した交付 {len(report.affected)} 件",
    ]
    for doc in report.affected:
        issued = doc.issued_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {doc.number}  {issued}  {doc.document}  請求者区分 {doc.requester}")
        for f in doc.findings:
            lines.append(f"    - {f.kind.value}: {f.resident_id} {f.name} {f.detail}")
        for c in doc.contacts:
            lines.append(f"    連絡先 {c.role}: {c.name} — {c.how}")
    lines += ["", f"■ 未処理の受付 {len(report.pending)} 件"]
    for r in report.pending:
        received = r.received_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {r.id}  {received}  {r.kind.value}  {r.resident_id} {r.summary}")
    lines += ["", "■ 手数料と現金"]
    for cash in report.cash:
        mark = "一致" if cash.ok else "不一致"
        lines.append(
            f"  {cash.day.isoformat()} {cash.box_id}/{cash.terminal}: 交付簿 {_yen(cash.expected)}"
            f" 現金 {_yen(cash.counted)}  {mark}"
        )
    lines += ["", "■ 用紙と交付簿"]
    for p in report.paper:
        mark = "一致" if p.ok else "不一致"
        counted = "未実施" if p.counted is None else f"{p.counted}枚（帳簿 {p.balance_at_count}枚）"
        lines.append(
            f"  {p.box_id}: 使用 {p.used_booked}枚 / 交付簿 {p.used_by_register}枚、"
            f"損じ {p.spoiled}枚、残 {p.balance}枚、棚卸 {counted}  {mark}"
        )
    lines += ["", "問題なし" if report.clean else "要対応の項目があります"]
    return "\n".join(lines) + "\n"
