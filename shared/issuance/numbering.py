"""発行番号: one number per copy, unique across every box of the federation, never reused.

Format (ASCII, so it prints in any font and reads back from a QR code)::

    [D]YYYYMMDD-TOWN-BOX-TERMINAL-PRINTER-SERIAL          e.g. 20261126-15307-B01-T02-P1-000042
    20261126-15307-B01-T02-P1-000042 2/3                  as printed on page 2 of 3

`D` marks the drill series. Uniqueness comes from the box id: a serial is counted per
town, box and series, so two boxes never need to agree on anything, even offline. The
date, terminal and printer are there for people (which desk, which day), not for
uniqueness.

Never reused: the counter is saved through the storage seam *before* the number is
returned, so a crash between allocation and printing leaves a gap, never a duplicate.
A spoiled or jammed sheet voids its copy's number (recorded with the reason); the reprint
takes a new number. One writer per town and box (the town's worker on that box), so a
process-wide lock is enough.

Keys: ("issuance", town, "serial", box, "live"|"drill") → decimal ASCII;
("issuance", town, "void", number) → JSON `VoidedNumber`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime

from shared.storage import Storage, StorageKey

from .codec import decode, encode
from .errors import NumberingError

_PART = re.compile(r"^[A-Za-z0-9]{1,16}$")
_NUMBER = re.compile(
    r"^(D?)(\d{8})-(\d{5})-([A-Za-z0-9]{1,16})-([A-Za-z0-9]{1,16})-([A-Za-z0-9]{1,16})-(\d{6,})$"
)
_LOCK = threading.Lock()


def box_code_for(box_verify_key: bytes) -> str:
    """A box's part of the 発行番号, derived from its Ed25519 public key: two boxes can
    never share a series by a copied setting, and the hub can tell which enrolled box
    wrote a number (or an export) from the box certificate alone. Nine ASCII letters and
    digits, stable for the life of the key."""
    digest = hashlib.sha256(box_verify_key).digest()
    return "B" + base64.b32encode(digest[:5]).decode("ascii")


def check_part(value: str, what: str) -> str:
    if not _PART.match(value):
        raise NumberingError(f"{what}「{value}」は半角英数字16文字以内で指定してください。")
    return value


@dataclass(frozen=True, slots=True, order=True)
class IssueNumber:
    day: date
    town_code: str
    box_id: str
    terminal: str
    printer: str
    serial: int
    drill: bool = False

    def __str__(self) -> str:
        prefix = "D" if self.drill else ""
        return (
            f"{prefix}{self.day:%Y%m%d}-{self.town_code}-{self.box_id}-{self.terminal}-"
            f"{self.printer}-{self.serial:06d}"
        )

    def page(self, n: int, total: int) -> str:
        """The number as printed on page n of total (in place of a 契印)."""
        if not 1 <= n <= total:
            raise NumberingError(f"ページ番号 {n}/{total} が正しくありません。")
        return f"{self} {n}/{total}"

    @classmethod
    def parse(cls, text: str) -> IssueNumber:
        found = _NUMBER.match(text.split(" ")[0])
        if not found:
            raise NumberingError(f"発行番号「{text}」の形式が正しくありません。")
        drill, day, town, box, terminal, printer, serial = found.groups()
        try:
            parsed_day = datetime.strptime(day, "%Y%m%d").date()
        except ValueError as exc:
            raise NumberingError(f"発行番号「{text}」の日付が正しくありません。") from exc
        return cls(parsed_day, town, box, terminal, printer, int(serial), drill == "D")


@dataclass(frozen=True, slots=True)
class VoidedNumber:
    number: str
    voided_at: datetime
    reason: str  # 紙詰まり, 印字不良, 書き損じ …
    sheets: int  # sheets spoiled with it (for the 用紙受払簿)
    clerk_id: str


def _series(drill: bool) -> str:
    return "drill" if drill else "live"


def next_serial(storage: Storage, key: StorageKey) -> int:
    """Increment and persist a counter; the new value is saved before it is returned."""
    with _LOCK:
        raw = storage.load(key)
        current = int(raw.decode("ascii")) if raw is not None else 0
        serial = current + 1
        storage.save(key, str(serial).encode("ascii"))
        return serial


class NumberAllocator:
    """The 発行番号 counter of one town on one box."""

    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self._storage = storage
        self.town_code = town_code
        self.box_id = check_part(box_id, "端末機器ID")

    def _key(self, drill: bool) -> StorageKey:
        return ("issuance", self.town_code, "serial", self.box_id, _series(drill))

    def last_serial(self, *, drill: bool = False) -> int:
        raw = self._storage.load(self._key(drill))
        return int(raw.decode("ascii")) if raw is not None else 0

    def allocate(
        self, day: date, terminal: str, printer: str, *, drill: bool = False
    ) -> IssueNumber:
        check_part(terminal, "端末ID")
        check_part(printer, "プリンタID")
        serial = next_serial(self._storage, self._key(drill))
        return IssueNumber(day, self.town_code, self.box_id, terminal, printer, serial, drill)

    def void(
        self, number: IssueNumber, *, at: datetime, reason: str, sheets: int, clerk_id: str
    ) -> VoidedNumber:
        if number.town_code != self.town_code or number.box_id != self.box_id:
            raise NumberingError(f"発行番号 {number} はこの町・この機器の番号ではありません。")
        if number.serial > self.last_serial(drill=number.drill):
            raise NumberingError(f"発行番号 {number} はまだ払い出されていません。")
        key = ("issuance", self.town_code, "void", str(number))
        if self._storage.load(key) is not None:
            raise NumberingError(f"発行番号 {number} はすでに無効にされています。")
        if not reason.strip():
            raise NumberingError("無効にする理由を入力してください。")
        voided = VoidedNumber(str(number), at, reason, sheets, clerk_id)
        self._storage.save(key, json.dumps(encode(voided), ensure_ascii=False).encode())
        return voided


def voided_numbers(storage: Storage, town_code: str) -> list[VoidedNumber]:
    """Every voided number of the town, from every box whose records reached `storage`."""
    return [
        decode(VoidedNumber, json.loads(raw))
        for _, raw in storage.load_range(("issuance", town_code, "void"))
    ]
