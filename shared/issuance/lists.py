"""Lists handed out after a disaster: the 全住民一覧 and the 避難行動要支援者名簿.

Why their own rules: a list is every resident's address on paper, carried door to door.

- Every printed copy gets a number and a log line (recipient, purpose, time, whether it
  leaves the office) and is later marked returned or destroyed; `outstanding()` is what
  the town must still collect.
- On copies that leave the office, people under 支援措置 are masked: no name, birth date
  or address, only a line saying the office checks on them itself. They are listed last,
  so their position does not hint at the household they live in.
- The 要支援者名簿 comes from welfare data. Before a disaster only people who consented go
  to responders; everybody goes only once a disaster has struck or is imminent *and* the
  mayor (or 職務代理者) judged it 特に必要 (災害対策基本法 §49-11 ③). That judgement is a
  `ReleaseDecision` signed with the official's Ed25519 key (PyNaCl); the release checks
  the signature against the key the caller trusts for that official, and logs the copy
  with the decision's id.

Copy numbers: L-TOWN-BOX-SERIAL, counted per town and box like 発行番号, never reused.
Keys: ("issuance", town, "lists", number) → JSON `ListCopy`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from shared.model import Sex, SupportNeed
from shared.storage import Storage

from .codec import decode, encode
from .context import JST
from .data import TownData
from .errors import RegisterError, ReleaseRefused
from .items import statutory_order
from .numbering import check_part, next_serial

MASKED_NAME = "＊＊＊＊"
MASKED_NOTE = "支援措置対象のため非表示（役場が直接確認）"
_SIGNATURE_LABEL = b"renkei-release-decision-v1\x00"


class ListKind(enum.StrEnum):
    ALL_RESIDENTS = "全住民一覧（安否確認用）"
    SUPPORT_NEEDS = "避難行動要支援者名簿"


class CopyState(enum.StrEnum):
    OUT = "貸出中"
    RETURNED = "返却済"
    DESTROYED = "廃棄済"


@dataclass(frozen=True, slots=True)
class ListRow:
    resident_id: str
    name: str
    kana: str
    birth_date: date | None
    sex: Sex | None
    district: str
    address: str
    household_id: str
    masked: bool = False
    contact: str = ""  # 要支援者名簿 only
    reason: str = ""  # 要支援者名簿 only


@dataclass(frozen=True, slots=True)
class ListCopy:
    number: str
    town_code: str
    kind: ListKind
    district: str  # "" = the whole town
    recipient: str
    purpose: str
    leaves_office: bool
    issued_at: datetime
    clerk_id: str
    rows: int
    masked: int
    decision_id: str = ""  # the signed release decision (要支援者名簿 beyond consent)
    state: CopyState = CopyState.OUT
    state_at: datetime | None = None
    state_note: str = ""


def _masked(row: ListRow) -> ListRow:
    return ListRow(
        "",
        MASKED_NAME,
        "",
        None,
        None,
        row.district,
        "",
        "",
        masked=True,
        reason=MASKED_NOTE,
    )


def _mask_protected(rows: list[ListRow], protected: set[str], leaves: bool) -> list[ListRow]:
    if not leaves:
        return rows
    shown = [r for r in rows if r.resident_id not in protected]
    hidden = [_masked(r) for r in rows if r.resident_id in protected]
    return shown + hidden


def _protected_ids(data: TownData, day: date) -> set[str]:
    return {rid for b in data.blocks if b.active_on(day) for rid in b.protected_ids}


def safety_rows(data: TownData, district: str, *, leaves_office: bool, day: date) -> list[ListRow]:
    """The 全住民一覧 of one 大字 ("" for the whole town): living residents by address and
    household, members in statutory order; protected people masked if it leaves."""
    rows: list[ListRow] = []
    households = sorted(
        (h for h in data.households.values() if not district or h.district == district),
        key=lambda h: (h.district, h.address, h.id),
    )
    for household in households:
        for p in statutory_order(data.members_of(household.id), household.head_id):
            rows.append(
                ListRow(
                    p.id,
                    p.name,
                    p.kana,
                    p.birth_date,
                    p.sex,
                    household.district,
                    household.address,
                    household.id,
                )
            )
    return _mask_protected(rows, _protected_ids(data, day), leaves_office)


# ---------------------------------------------------------------------------- release


class Situation(enum.StrEnum):
    STRUCK = "災害発生"
    IMMINENT = "災害発生のおそれ"


@dataclass(frozen=True, slots=True)
class ReleaseDecision:
    """The mayor's judgement that the 名簿 goes to responders without consent."""

    decision_id: str
    town_code: str
    decided_at: datetime
    situation: Situation
    disaster: str  # e.g. 令和8年11月26日 新潟県下越地方の地震
    especially_necessary: bool  # 特に必要があると認める
    recipients: tuple[str, ...]  # 消防団, 民生委員, 自主防災組織 …
    official_name: str
    official_title: str  # 町長 or 職務代理者 …


@dataclass(frozen=True, slots=True)
class SignedDecision:
    decision: ReleaseDecision
    signature: str  # hex Ed25519 signature over label + canonical JSON
    signer_key: str  # hex verify key, for the log (trust comes from the caller's key)


def _canonical(decision: ReleaseDecision) -> bytes:
    return (
        _SIGNATURE_LABEL
        + json.dumps(
            encode(decision), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode()
    )


def sign_release(decision: ReleaseDecision, key: SigningKey) -> SignedDecision:
    signature = key.sign(_canonical(decision)).signature
    return SignedDecision(decision, signature.hex(), key.verify_key.encode().hex())


def verify_release(signed: SignedDecision, official_key: VerifyKey) -> ReleaseDecision:
    try:
        official_key.verify(_canonical(signed.decision), bytes.fromhex(signed.signature))
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise ReleaseRefused(
            "名簿提供の決定書の署名を確認できません。町長（職務代理者）の署名をもう一度受けてください。"
        ) from exc
    return signed.decision


def support_rows(
    needs: Iterable[SupportNeed],
    data: TownData,
    *,
    day: date,
    release: ReleaseDecision | None,
) -> list[ListRow]:
    """要支援者名簿 rows: consenting people only, or everybody under a verified decision;
    people under 支援措置 masked (the 名簿 always leaves the office)."""
    rows = []
    for need in needs:
        person = data.residents.get(need.resident_id)
        if person is None or person.is_removed or (release is None and not need.consented):
            continue
        household = data.households.get(person.household_id)
        rows.append(
            ListRow(
                person.id,
                person.name,
                person.kana,
                person.birth_date,
                person.sex,
                household.district if household else "",
                household.address if household else "",
                person.household_id,
                contact=need.contact,
                reason=need.reason,
            )
        )
    return _mask_protected(rows, _protected_ids(data, day), True)


def check_release(
    signed: SignedDecision,
    official_key: VerifyKey,
    *,
    town_code: str,
    recipient: str,
    at: datetime,
) -> ReleaseDecision:
    decision = verify_release(signed, official_key)
    if decision.town_code != town_code:
        raise ReleaseRefused("この決定書は別の町のものです。")
    if not decision.especially_necessary:
        raise ReleaseRefused(
            "決定書に「特に必要があると認める」旨がありません。同意者分のみ提供できます。"
        )
    if at < decision.decided_at:
        raise ReleaseRefused("決定の日時より前には提供できません。時計を確認してください。")
    if recipient not in decision.recipients:
        raise ReleaseRefused(f"「{recipient}」は決定書の提供先に含まれていません。")
    return decision


# ---------------------------------------------------------------------------- copy log


class ListCopyLog:
    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self._storage = storage
        self.town_code = town_code
        self.box_id = check_part(box_id, "端末機器ID")

    def _save(self, copy: ListCopy) -> None:
        raw = json.dumps(encode(copy), ensure_ascii=False, sort_keys=True).encode()
        self._storage.save(("issuance", self.town_code, "lists", copy.number), raw)

    def issue(
        self,
        kind: ListKind,
        rows: list[ListRow],
        *,
        district: str,
        recipient: str,
        purpose: str,
        leaves_office: bool,
        at: datetime,
        clerk_id: str,
        decision_id: str = "",
    ) -> ListCopy:
        if not recipient.strip() or not purpose.strip():
            raise RegisterError("名簿の交付先と利用目的を入力してください。")
        serial = next_serial(self._storage, ("issuance", self.town_code, "list-seq", self.box_id))
        copy = ListCopy(
            f"L-{self.town_code}-{self.box_id}-{serial:06d}",
            self.town_code,
            kind,
            district,
            recipient,
            purpose,
            leaves_office,
            at,
            clerk_id,
            len(rows),
            sum(1 for r in rows if r.masked),
            decision_id,
        )
        self._save(copy)
        return copy

    def get(self, number: str) -> ListCopy:
        raw = self._storage.load(("issuance", self.town_code, "lists", number))
        if raw is None:
            raise RegisterError(f"名簿の控え {number} は記録にありません。")
        return decode(ListCopy, json.loads(raw))

    def _close(self, number: str, state: CopyState, at: datetime, note: str) -> ListCopy:
        copy = self.get(number)
        if copy.state is not CopyState.OUT:
            raise RegisterError(f"名簿の控え {number} はすでに{copy.state.value}です。")
        closed = replace(copy, state=state, state_at=at, state_note=note)
        self._save(closed)
        return closed

    def returned(self, number: str, at: datetime, note: str = "") -> ListCopy:
        return self._close(number, CopyState.RETURNED, at, note)

    def destroyed(self, number: str, at: datetime, note: str = "") -> ListCopy:
        return self._close(number, CopyState.DESTROYED, at, note)

    def copies(self) -> list[ListCopy]:
        rows = self._storage.load_range(("issuance", self.town_code, "lists"))
        return [decode(ListCopy, json.loads(raw)) for _, raw in rows]

    def outstanding(self) -> list[ListCopy]:
        return [c for c in self.copies() if c.state is CopyState.OUT]


def print_support_list(
    log: ListCopyLog,
    needs: Iterable[SupportNeed],
    data: TownData,
    *,
    recipient: str,
    purpose: str,
    at: datetime,
    clerk_id: str,
    signed: SignedDecision | None = None,
    official_key: VerifyKey | None = None,
) -> tuple[ListCopy, list[ListRow]]:
    """The 要支援者名簿 for a responder: consenting people, or — with a signed decision
    that verifies against `official_key` — everyone. Logged either way."""
    release = None
    if signed is not None:
        if official_key is None:
            raise ReleaseRefused("決定書を確認する町長（職務代理者）の鍵がありません。")
        release = check_release(
            signed, official_key, town_code=data.town.code, recipient=recipient, at=at
        )
    day = at.astimezone(JST).date()
    rows = support_rows(needs, data, day=day, release=release)
    copy = log.issue(
        ListKind.SUPPORT_NEEDS,
        rows,
        district="",
        recipient=recipient,
        purpose=purpose,
        leaves_office=True,
        at=at,
        clerk_id=clerk_id,
        decision_id=release.decision_id if release else "",
    )
    return copy, rows


def print_safety_list(
    log: ListCopyLog,
    data: TownData,
    *,
    district: str,
    recipient: str,
    purpose: str,
    leaves_office: bool,
    at: datetime,
    clerk_id: str,
) -> tuple[ListCopy, list[ListRow]]:
    day = at.astimezone(JST).date()
    rows = safety_rows(data, district, leaves_office=leaves_office, day=day)
    copy = log.issue(
        ListKind.ALL_RESIDENTS,
        rows,
        district=district,
        recipient=recipient,
        purpose=purpose,
        leaves_office=leaves_office,
        at=at,
        clerk_id=clerk_id,
    )
    return copy, rows
