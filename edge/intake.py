"""Intake (申請受付) at the counter while the data is stale or the hub unreachable: what
the applicant asked for is written down, a receipt is printed, and nothing is changed in
the registry (BRIEF §1: on stale data, take applications and mail results later).

An application records 受付日, what was asked (a certificate to be mailed, a change or
death report, something else), the person it concerns, the applicant, 連絡先 and 送付先.
It is kept in the town's registers on the box — sealed to the town, like every register,
so nothing of it is plaintext at rest — and also enters the issuance rules' intake queue
(`shared.issuance.intake.StoredIntake`): a pending 異動届 or 死亡届 holds back any
certificate about that person until the town has processed it.

Keys (inside the sealed registers storage):

    (town, "intake-app", 受付番号)        JSON `Application`
    (town, "intake-receipt", 受付番号)    the receipt PDF as printed
    ("intake", town, 受付番号)            the rules' PendingReport (StoredIntake)

受付番号: ``U-TOWN-BOX-SERIAL`` counted per town and box, saved before use, never reused.
`export_csv` gives the list the town imports after recovery (sealed for export, see
edge.exports).
"""

from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from shared.issuance import JST
from shared.issuance.intake import PendingReport, ReportKind, StoredIntake
from shared.issuance.numbering import check_part, next_serial
from shared.storage import Storage

APP = "intake-app"
RECEIPT = "intake-receipt"


class IntakeError(Exception):
    """An application that cannot be recorded (the message is for the clerk)."""


class IntakeKind(enum.StrEnum):
    CERTIFICATE = "証明書の交付請求（後日郵送）"
    CHANGE = "異動届（転入・転出・転居など）"
    DEATH = "死亡届"
    OTHER = "その他の申請・届出"

    @property
    def report(self) -> ReportKind:
        return {
            IntakeKind.CERTIFICATE: ReportKind.APPLICATION,
            IntakeKind.CHANGE: ReportKind.CHANGE,
            IntakeKind.DEATH: ReportKind.DEATH,
            IntakeKind.OTHER: ReportKind.OTHER,
        }[self]


FORM_KINDS = {
    "certificate": IntakeKind.CERTIFICATE,
    "change": IntakeKind.CHANGE,
    "death": IntakeKind.DEATH,
    "other": IntakeKind.OTHER,
}


@dataclass(frozen=True, slots=True)
class Application:
    number: str  # 受付番号
    town_code: str
    received_at: str  # ISO 8601, JST: 受付日時
    kind: IntakeKind
    document: str  # the certificate asked for (its label), for CERTIFICATE
    subject_id: str  # 宛名番号 of the person it concerns ("" if not found)
    subject_name: str
    applicant_name: str
    contact: str  # 連絡先 (phone)
    send_to: str  # 送付先 (address the result is mailed to)
    details: str  # what the applicant asked, in the clerk's words
    reason: str  # why it was taken, not done (stale data, hub unreachable, rules)
    clerk_id: str
    terminal: str
    state: str = "未処理"

    @property
    def received_label(self) -> str:
        moment = datetime.fromisoformat(self.received_at)
        return moment.strftime("%Y-%m-%d %H:%M")

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Application:
        return cls(**{**data, "kind": IntakeKind(data["kind"])})  # type: ignore[arg-type]


class IntakeBook:
    """The town's applications on this box (give it the sealed registers storage)."""

    def __init__(self, storage: Storage, town_code: str, box_id: str) -> None:
        self.storage = storage
        self.town_code = town_code
        self.box_id = check_part(box_id, "端末機器ID")
        self.queue = StoredIntake(storage, town_code)

    def take(
        self,
        *,
        kind: IntakeKind,
        at: datetime,
        document: str,
        subject_id: str,
        subject_name: str,
        applicant_name: str,
        contact: str,
        send_to: str,
        details: str,
        reason: str,
        clerk_id: str,
        terminal: str,
    ) -> Application:
        if not applicant_name.strip():
            raise IntakeError("申請者の氏名を入力してください。")
        if not contact.strip():
            raise IntakeError("連絡先（電話番号など）を入力してください。")
        if kind is IntakeKind.CERTIFICATE and not send_to.strip():
            raise IntakeError("証明書の送付先を入力してください。")
        if kind in (IntakeKind.CHANGE, IntakeKind.DEATH) and not subject_id:
            raise IntakeError("届出の対象となる方を検索して選んでください。")
        serial = next_serial(self.storage, (self.town_code, "intake-seq", self.box_id))
        number = f"U-{self.town_code}-{self.box_id}-{serial:06d}"
        application = Application(
            number=number,
            town_code=self.town_code,
            received_at=at.astimezone(JST).isoformat(timespec="seconds"),
            kind=kind,
            document=document,
            subject_id=subject_id,
            subject_name=subject_name,
            applicant_name=applicant_name.strip(),
            contact=contact.strip(),
            send_to=send_to.strip(),
            details=details.strip(),
            reason=reason,
            clerk_id=clerk_id,
            terminal=terminal,
        )
        raw = json.dumps(application.to_json(), ensure_ascii=False, sort_keys=True).encode()
        self.storage.save((self.town_code, APP, number), raw)
        self.queue.add(
            PendingReport(
                id=number,
                town_code=self.town_code,
                resident_id=subject_id,
                kind=kind.report,
                received_at=at,
                summary=f"{kind.value} {document}".strip(),
            )
        )
        return application

    def applications(self) -> list[Application]:
        rows = self.storage.load_range((self.town_code, APP))
        found = [Application.from_json(json.loads(raw)) for _, raw in rows]
        return sorted(found, key=lambda a: (a.received_at, a.number))

    def keep_receipt(self, number: str, pdf: bytes) -> None:
        self.storage.save((self.town_code, RECEIPT, number), pdf)

    def receipt(self, number: str) -> bytes | None:
        return self.storage.load((self.town_code, RECEIPT, number))

    def export_csv(self) -> bytes:
        """Every application as CSV (UTF-8 with BOM, for the town's spreadsheet)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(
            ["受付番号", "受付日時", "種類", "証明書", "宛名番号", "対象者", "申請者",
             "連絡先", "送付先", "内容", "受付の理由", "受付職員", "端末", "状態"]
        )  # fmt: skip
        for a in self.applications():
            writer.writerow(
                [a.number, a.received_label, a.kind.value, a.document, a.subject_id,
                 a.subject_name, a.applicant_name, a.contact, a.send_to, a.details, a.reason,
                 a.clerk_id, a.terminal, a.state]
            )  # fmt: skip
        return ("\ufeff" + out.getvalue()).encode("utf-8")
