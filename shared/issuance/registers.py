"""The town's books at the counter: 交付 register, 用紙受払簿, cash counts and 日計表.

- `IssuanceRegister`: one `IssuanceEntry` per copy, keyed by its 発行番号 — who asked (区分,
  applicant, 本人確認 method and document *kinds*), about whom, what was printed, how it
  was handed over, the fee, 減免, payment and receipt, and what data it came from.
  Entries are never overwritten; a spoiled copy stays, its number voided.
- `PaperRegister` (用紙受払簿) per town and box: sheets received, used (recorded by the
  printing layer per sheet actually fed), spoiled, and stock counts.
- `CashBook`: the cash counted per day, box and terminal at closing.
- `daily_report` (日計表): per terminal, documents, gross fees, 減免 and cash collected.

The document's town owns the entry: a visiting clerk issuing 出雲崎町's certificates on a
聖籠町 box writes into 出雲崎町's register, and the cash taken there is 出雲崎町's
revenue — `host_town_code` only says where the desk stood, and `held_for_other_towns`
tells the host's cashier what in the drawer is not theirs.

Everything persists through the storage seam as JSON under ("issuance", town, …).
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from shared.model import TaxKind
from shared.storage import Storage

from .basis import SubjectBasis
from .codec import decode, encode
from .context import JST
from .decisions import Handover
from .errors import RegisterError
from .fees import Reduction
from .numbering import check_part, next_serial, voided_numbers
from .requests import (
    Channel,
    DocumentKind,
    IdDocumentKind,
    IdentityMethod,
    Item,
    RequesterKind,
)


class Payment(enum.StrEnum):
    CASH = "現金"
    NOT_REQUIRED = "不要"


@dataclass(frozen=True, slots=True)
class IssuanceEntry:
    number: str  # 発行番号 (without page n/N)
    town_code: str  # the document's town: its register, its revenue
    issued_at: datetime
    box_id: str
    terminal: str
    printer: str
    host_town_code: str  # the office where the desk stood
    clerk_id: str
    clerk_town_code: str
    document: DocumentKind
    subject_ids: tuple[str, ...]
    whole_household: bool
    items: frozenset[Item]
    requester: RequesterKind
    applicant_name: str
    applicant_address: str
    applicant_phone: str
    applicant_resident_id: str
    identity_method: IdentityMethod
    identity_documents: tuple[IdDocumentKind, ...]  # kinds only, never numbers
    identity_flagged: bool
    channel: Channel
    handover: Handover
    purpose: str  # 第三者・職務上・公用 purpose and 提出先
    professional: str  # 士業, 登録番号, 請求書の通し番号
    sheets: int  # sheets of this copy
    fee_unit: int
    fee_gross: int
    reduction: Reduction
    fee_payable: int
    payment: Payment
    receipt_number: str
    drill: bool
    stale: bool
    registry_checked_at: datetime | None
    blocks_checked_at: datetime | None
    blocks_seen: tuple[str, ...]
    fiscal_year: int | None = None
    tax_kind: TaxKind | None = None
    vehicle_id: str = ""
    salt: str = ""
    basis: tuple[SubjectBasis, ...] = ()
    reprint_of: str = ""  # the voided number this copy replaces

    @property
    def day(self) -> date:
        return self.issued_at.astimezone(JST).date()

    @property
    def visiting(self) -> bool:
        return self.host_town_code != self.town_code


def _dump(value: object) -> bytes:
    return json.dumps(encode(value), ensure_ascii=False, sort_keys=True).encode()


class IssuanceRegister:
    """交付 register of one town (every box's entries, once synced)."""

    def __init__(self, storage: Storage, town_code: str) -> None:
        self._storage = storage
        self.town_code = town_code

    def record(self, entry: IssuanceEntry) -> None:
        if entry.town_code != self.town_code:
            raise RegisterError(f"発行番号 {entry.number} は別の町の記録です。")
        key = ("issuance", self.town_code, "register", entry.number)
        if self._storage.load(key) is not None:
            raise RegisterError(f"発行番号 {entry.number} はすでに交付簿にあります（再使用不可）。")
        self._storage.save(key, _dump(entry))

    def get(self, number: str) -> IssuanceEntry | None:
        raw = self._storage.load(("issuance", self.town_code, "register", number))
        return None if raw is None else decode(IssuanceEntry, json.loads(raw))

    def entries(self) -> list[IssuanceEntry]:
        rows = self._storage.load_range(("issuance", self.town_code, "register"))
        found = [decode(IssuanceEntry, json.loads(raw)) for _, raw in rows]
        return sorted(found, key=lambda e: (e.issued_at, e.number))

    def voided(self) -> set[str]:
        return {v.number for v in voided_numbers(self._storage, self.town_code)}

    def valid_entries(self) -> list[IssuanceEntry]:
        """Entries whose number was not voided (the copies that left the printer)."""
        void = self.voided()
        return [e for e in self.entries() if e.number not in void]


# ---------------------------------------------------------------------------- paper


class PaperMovement(enum.StrEnum):
    RECEIVED = "受入"
    USED = "使用"
    SPOILED = "損じ"
    COUNTED = "棚卸"


@dataclass(frozen=True, slots=True)
class PaperEntry:
    seq: int
    town_code: str
    box_id: str
    movement: PaperMovement
    sheets: int
    at: datetime
    clerk_id: str
    number: str = ""  # 発行番号 for USED and SPOILED
    note: str = ""


class PaperRegister:
    """用紙受払簿 of one town's paper on one box."""

    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self._storage = storage
        self.town_code = town_code
        self.box_id = check_part(box_id, "端末機器ID")

    def _add(
        self,
        movement: PaperMovement,
        sheets: int,
        at: datetime,
        clerk_id: str,
        number: str = "",
        note: str = "",
    ) -> PaperEntry:
        if sheets < 0:
            raise RegisterError("枚数は0以上で入力してください。")
        seq = next_serial(self._storage, ("issuance", self.town_code, "paper-seq", self.box_id))
        entry = PaperEntry(
            seq, self.town_code, self.box_id, movement, sheets, at, clerk_id, number, note
        )
        key = ("issuance", self.town_code, "paper", self.box_id, f"{seq:09d}")
        self._storage.save(key, _dump(entry))
        return entry

    def receive(self, sheets: int, at: datetime, clerk_id: str, note: str = "") -> PaperEntry:
        return self._add(PaperMovement.RECEIVED, sheets, at, clerk_id, note=note)

    def use(self, sheets: int, number: str, at: datetime, clerk_id: str) -> PaperEntry:
        return self._add(PaperMovement.USED, sheets, at, clerk_id, number=number)

    def spoil(self, sheets: int, number: str, at: datetime, clerk_id: str, note: str) -> PaperEntry:
        return self._add(PaperMovement.SPOILED, sheets, at, clerk_id, number=number, note=note)

    def count(self, sheets: int, at: datetime, clerk_id: str) -> PaperEntry:
        """A physical stock count (棚卸)."""
        return self._add(PaperMovement.COUNTED, sheets, at, clerk_id)

    def movements(self) -> list[PaperEntry]:
        rows = self._storage.load_range(("issuance", self.town_code, "paper", self.box_id))
        return [decode(PaperEntry, json.loads(raw)) for _, raw in rows]

    def balance(self) -> int:
        total = 0
        for m in self.movements():
            if m.movement is PaperMovement.RECEIVED:
                total += m.sheets
            elif m.movement in (PaperMovement.USED, PaperMovement.SPOILED):
                total -= m.sheets
        return total


def paper_boxes(storage: Storage, town_code: str) -> list[str]:
    """Boxes that hold a 用紙受払簿 for the town."""
    return sorted({key[3] for key, _ in storage.load_range(("issuance", town_code, "paper"))})


# ---------------------------------------------------------------------------- cash


@dataclass(frozen=True, slots=True)
class CashCount:
    town_code: str
    day: date
    box_id: str
    terminal: str
    counted: int  # yen in the drawer for this town's documents
    counted_at: datetime
    clerk_id: str


class CashBook:
    def __init__(self, storage: Storage, town_code: str) -> None:
        self._storage = storage
        self.town_code = town_code

    def record(self, count: CashCount) -> None:
        key = (
            "issuance",
            self.town_code,
            "cash",
            count.day.isoformat(),
            count.box_id,
            count.terminal,
        )
        self._storage.save(key, _dump(count))

    def counts(self) -> list[CashCount]:
        rows = self._storage.load_range(("issuance", self.town_code, "cash"))
        return [decode(CashCount, json.loads(raw)) for _, raw in rows]


class ReceiptBook:
    """領収書番号 per town and box: R-YYYYMMDD-TOWN-BOX-SERIAL, never reused."""

    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self._storage = storage
        self.town_code = town_code
        self.box_id = check_part(box_id, "端末機器ID")

    def next(self, day: date) -> str:
        serial = next_serial(self._storage, ("issuance", self.town_code, "receipt", self.box_id))
        return f"R-{day:%Y%m%d}-{self.town_code}-{self.box_id}-{serial:06d}"


# ---------------------------------------------------------------------------- 日計表


@dataclass(frozen=True, slots=True)
class DailyLine:
    town_code: str
    day: date
    box_id: str
    terminal: str
    host_town_code: str
    copies: int
    gross: int
    waived: int
    collected: int
    by_document: tuple[tuple[DocumentKind, int], ...] = ()
    by_reduction: tuple[tuple[Reduction, int, int], ...] = field(default=())  # (減免, copies, yen)

    @property
    def visiting(self) -> bool:
        """Taken at a partner's office by visiting clerks: still this town's revenue."""
        return self.host_town_code != self.town_code


def daily_report(entries: Iterable[IssuanceEntry], day: date) -> list[DailyLine]:
    """日計表: one line per (town, box, terminal) for `day`; drill copies left out.
    Pass `IssuanceRegister.valid_entries()` so voided copies are not counted."""
    groups: dict[tuple[str, str, str, str], list[IssuanceEntry]] = defaultdict(list)
    for e in entries:
        if e.day == day and not e.drill:
            groups[(e.town_code, e.box_id, e.terminal, e.host_town_code)].append(e)
    lines = []
    for (town, box, terminal, host), rows in sorted(groups.items()):
        docs: dict[DocumentKind, int] = defaultdict(int)
        reductions: dict[Reduction, list[int]] = defaultdict(lambda: [0, 0])
        for e in rows:
            docs[e.document] += 1
            if e.reduction is not Reduction.NONE:
                reductions[e.reduction][0] += 1
                reductions[e.reduction][1] += e.fee_gross
        lines.append(
            DailyLine(
                town_code=town,
                day=day,
                box_id=box,
                terminal=terminal,
                host_town_code=host,
                copies=len(rows),
                gross=sum(e.fee_gross for e in rows),
                waived=sum(e.fee_gross - e.fee_payable for e in rows),
                collected=sum(e.fee_payable for e in rows if e.payment is Payment.CASH),
                by_document=tuple(sorted(docs.items())),
                by_reduction=tuple((r, n, y) for r, (n, y) in sorted(reductions.items())),
            )
        )
    return lines


def held_for_other_towns(lines: Iterable[DailyLine], host_town_code: str) -> dict[str, int]:
    """Cash in the host's drawers that belongs to visiting towns, by town code."""
    held: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.host_town_code == host_town_code and line.town_code != host_town_code:
            held[line.town_code] += line.collected
    return dict(held)
