"""暫定異動: a supervisor's provisional emergency change, the one change the box records
while the core system (基幹系) is out of reach (issue #9, Build 4).

During an emergency a resident may move to a shelter's address or die; the town still
has to know it, and the counter must not print a certificate that is already wrong. The
box does not change the registry (the replica stays what the core system exported): a
supervisor records the change here, and

- it is kept sealed to the town in the town's registers (no plaintext at rest);
- it enters the issuance rules' intake queue as a pending 異動届 / 死亡届, so every
  certificate about the person is refused with the rules' Japanese explanation
  (`intake_pending`) until the core system has processed it — the same hold a 異動届
  taken at intake gets (why refuse rather than print with a remark: docs/supervisor.md);
- the resident's screen shows it (`for_residents`);
- the end of the emergency exports it for the core system (edge/emergency_export.py).

Keys (inside the sealed registers storage, like edge/intake.py):

    (town, "provisional", 番号)     JSON `ProvisionalChange`
    ("intake", town, 番号)          the rules' PendingReport (StoredIntake)

番号: ``P-TOWN-BOX-SERIAL`` counted per town and box, never reused.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime

from shared.issuance import JST
from shared.issuance.intake import PendingReport, ReportKind, StoredIntake
from shared.issuance.numbering import check_part, next_serial
from shared.storage import Storage

PROVISIONAL = "provisional"
MAX_TEXT = 200


class ProvisionalError(Exception):
    """A change that cannot be recorded (the message is for the supervisor)."""


class ChangeKind(enum.StrEnum):
    MOVE = "転居"
    DEATH = "死亡"

    @property
    def report(self) -> ReportKind:
        return ReportKind.DEATH if self is ChangeKind.DEATH else ReportKind.CHANGE


FORM_KINDS = {"move": ChangeKind.MOVE, "death": ChangeKind.DEATH}


@dataclass(frozen=True, slots=True)
class ProvisionalChange:
    number: str
    town_code: str
    recorded_at: str  # ISO 8601, JST
    kind: ChangeKind
    subject_id: str  # 宛名番号
    subject_name: str
    effective: str  # 異動日 / 死亡日 (YYYY-MM-DD)
    new_address: str  # 転居先 (転居 only)
    reported_by: str  # 届出人
    reason: str  # why it could not wait for the core system
    supervisor: str  # login id of the supervisor who recorded it
    host_town: str  # the box's town (a partner's box in cases 2 and 3)
    state: str = "暫定（基幹系で未処理）"

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> ProvisionalChange:
        return cls(**{**data, "kind": ChangeKind(data["kind"])})  # type: ignore[arg-type]

    def summary(self) -> str:
        if self.kind is ChangeKind.DEATH:
            return f"暫定異動（死亡 {self.effective}）"
        return f"暫定異動（転居 {self.effective}）"


def _text(value: object, what: str, *, required: bool = True) -> str:
    text = " ".join(str(value or "").split())
    if required and not text:
        raise ProvisionalError(f"{what}を入力してください。")
    if len(text) > MAX_TEXT:
        raise ProvisionalError(f"{what}は{MAX_TEXT}文字以内で入力してください。")
    return text


class ProvisionalBook:
    """The town's provisional changes on this box (give it the sealed registers storage)."""

    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self.storage = storage
        self.town_code = town_code
        self.box_id = check_part(box_id, "端末機器ID")
        self.queue = StoredIntake(storage, town_code)

    def record(
        self,
        *,
        kind: str,
        subject_id: str,
        subject_name: str,
        effective: str,
        new_address: str,
        reported_by: str,
        reason: str,
        supervisor: str,
        host_town: str,
        at: datetime,
    ) -> ProvisionalChange:
        """Validate everything first, then write the change and its hold (nothing is
        half-applied: a refusal writes nothing, not even a serial number)."""
        change_kind = FORM_KINDS.get(kind)
        if change_kind is None:
            raise ProvisionalError("異動の種類（転居・死亡）を選んでください。")
        if not subject_id or not subject_name:
            raise ProvisionalError("対象となる方の宛名番号が記録にありません。")
        try:
            day = date.fromisoformat(str(effective).strip())
        except ValueError as exc:
            raise ProvisionalError(
                "異動日（死亡日）を 2026-11-27 の形で入力してください。"
            ) from exc
        if day > at.astimezone(JST).date():
            raise ProvisionalError("異動日（死亡日）に未来の日付は入力できません。")
        address = _text(new_address, "転居先の住所", required=change_kind is ChangeKind.MOVE)
        reporter = _text(reported_by, "届出人")
        why = _text(reason, "暫定で記録する理由")
        serial = next_serial(self.storage, (self.town_code, "provisional-seq", self.box_id))
        change = ProvisionalChange(
            number=f"P-{self.town_code}-{self.box_id}-{serial:06d}",
            town_code=self.town_code,
            recorded_at=at.astimezone(JST).isoformat(timespec="seconds"),
            kind=change_kind,
            subject_id=subject_id,
            subject_name=subject_name,
            effective=day.isoformat(),
            new_address=address if change_kind is ChangeKind.MOVE else "",
            reported_by=reporter,
            reason=why,
            supervisor=supervisor,
            host_town=host_town,
        )
        raw = json.dumps(change.to_json(), ensure_ascii=False, sort_keys=True).encode()
        self.storage.save((self.town_code, PROVISIONAL, change.number), raw)
        self.queue.add(
            PendingReport(
                id=change.number,
                town_code=self.town_code,
                resident_id=subject_id,
                kind=change_kind.report,
                received_at=at,
                summary=change.summary(),
            )
        )
        return change

    def changes(self) -> list[ProvisionalChange]:
        rows = self.storage.load_range((self.town_code, PROVISIONAL))
        found = [ProvisionalChange.from_json(json.loads(raw)) for _, raw in rows]
        return sorted(found, key=lambda c: (c.recorded_at, c.number))

    def for_residents(self, resident_ids: set[str]) -> dict[str, list[dict[str, str]]]:
        """What the resident's screen shows: kind, date and number — no address."""
        shown: dict[str, list[dict[str, str]]] = {}
        for change in self.changes():
            if change.subject_id in resident_ids:
                shown.setdefault(change.subject_id, []).append(
                    {"number": change.number, "kind": change.kind.value,
                     "effective": change.effective, "state": change.state}
                )  # fmt: skip
        return shown

    def export_csv(self) -> bytes:
        """Every change as CSV (UTF-8 with BOM), for the core system's operators."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(
            ["番号", "記録日時", "種類", "宛名番号", "対象者", "異動日", "転居先",
             "届出人", "理由", "記録した監督者", "記録した町村", "状態"]
        )  # fmt: skip
        for c in self.changes():
            writer.writerow(
                [c.number, c.recorded_at, c.kind.value, c.subject_id, c.subject_name,
                 c.effective, c.new_address, c.reported_by, c.reason, c.supervisor,
                 c.host_town, c.state]
            )  # fmt: skip
        return ("\ufeff" + out.getvalue()).encode("utf-8")
