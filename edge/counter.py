"""The counter inside a town's worker: a request for any counter document goes through
the issuance rules (`shared.issuance.decide`), is numbered and registered
(`IssuanceOffice`, sealed to the town at rest), rendered (`printing`), kept sealed for
`renkei reprint`, and printed on the terminal's CUPS queue or handed back for download.
List copies (全住民一覧, 要支援者名簿) are numbered the same way and logged in the list
copy log with recipient and purpose.

Only the worker runs this: it needs the town's records, the town's key ring (to seal the
registers) and the issuing clerk's keys (to sign the certificate's QR). The web front
gets back the decision and, when issued, the numbers, the fee and the PDF.

    issue(clerk, form, desk, now)  -> {"issued", "outcome", "copies": [{number, pdf?, job}],
                                       "fee", "reduction", "handover", "notes"}
                                      or the refusal: {"issued": false, "reason", "tell_applicant"}
    list_copy(clerk, form, desk, now) -> the same for a list copy ("list_number" too)
    printed(number)                -> the PDF kept for a 発行番号
    take_intake(clerk, form, desk, now) -> an application recorded (edge.intake), its receipt
    export(clerk, form, desk, now) -> a CSV sealed to the town (edge.exports)
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from edge import box_mode, counter_config
from edge.documents import BY_KEY, CounterFormError, choices, parse_request
from edge.intake import FORM_KINDS, IntakeBook, IntakeError
from edge.webfont import gaiji_table
from shared import crypto
from shared.export_csv import town_json
from shared.issuance import (
    JST,
    Decision,
    Desk,
    DocumentKind,
    IssuanceContext,
    IssuanceError,
    IssuanceOffice,
    Item,
    Operator,
    Outcome,
    RequesterKind,
    TownData,
    decide,
)
from shared.issuance.data import LookupMap, ShardedMap
from shared.issuance.lists import ListCopyLog, print_safety_list, print_support_list
from shared.issuance.numbering import IssueNumber as IssueNumberParse
from shared.issuance.numbering import check_part
from shared.model import Installment, NhiMember, Role, SupportNeed, TaxAssessment, Town, Vehicle
from shared.registry import TownRegistry
from shared.sealed_storage import SealedStorage
from shared.storage import Storage

log = logging.getLogger(__name__)

NO_PRINTER = "この端末にはプリンタが設定されていません。ダウンロードしてください。"
LIST_ROLES = frozenset({Role.SUPERVISOR, Role.REPRESENTATIVE, Role.ADMIN})  # 要支援者名簿


class CounterError(Exception):
    """A request the counter cannot even consider (the message is for the clerk)."""


@dataclass(frozen=True, slots=True)
class ClerkSession:
    login_id: str
    keys: crypto.ClerkKeys
    certificate: crypto.ClerkCertificate

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(r) for r in self.certificate.roles)


@dataclass(frozen=True, slots=True)
class DeskInfo:
    """Where the request is made, as the web front knows it: the terminal (from its LAN
    address and the box's configuration), its printer, the host office when the box is a
    partner's, and the head of the box's audit chain for this town (printed in the QR)."""

    terminal: str = counter_config.DEFAULT_TERMINAL
    printer: str = counter_config.DEFAULT_PRINTER
    queue: str = ""
    host_town: str = ""  # the town whose office the box stands in ("" = the issuing town)
    host_office: str = ""
    audit_head: bytes = bytes(32)

    @classmethod
    def from_json(cls, data: Any) -> DeskInfo:
        data = data if isinstance(data, dict) else {}
        head = bytes.fromhex(str(data.get("audit_head", "")) or "00" * 32)
        return cls(
            terminal=check_part(str(data.get("terminal", "T01")), "端末"),
            printer=check_part(str(data.get("printer", "P01")), "プリンタ"),
            queue=str(data.get("queue", "")),
            host_town=str(data.get("host_town", ""))[:5],
            host_office=str(data.get("host_office", ""))[:60],
            audit_head=head if len(head) == 32 else bytes(32),
        )


class Counter:
    def __init__(
        self,
        registry: TownRegistry,
        keyring: crypto.KeyRing,
        storage: Storage,
        box_id: str,
        data_as_of: str,
        writer_key: SigningKey,
        data_dir: Path | None = None,
    ) -> None:
        settings = registry.get("town", "settings")
        if settings is None:
            raise CounterError("町村の設定（公印規程・手数料）がまだ届いていません。")
        self.town = town_json.parse_town(settings.json)
        self.registry = registry
        self.keyring = keyring
        self.box_id = box_id
        self.data_dir = data_dir
        self.data_as_of = _as_of(data_as_of)
        self.data = town_data(registry, self.town)
        self.support_needs: list[SupportNeed] = list(registry.objects("support_needs"))
        self.gaiji = list(registry.objects("gaiji"))
        self._fonts_ready = False
        # Registers are sealed to the town and signed by the box's own key, so they still
        # verify after the worker restarts (numbers must never be reused).
        registers = registers_storage(storage, keyring, box_id, writer_key)
        self.registers = registers
        self.office = IssuanceOffice(registers, self.town.code, box_id)
        self.lists = ListCopyLog(registers, self.town.code, box_id)
        self.intake = IntakeBook(registers, self.town.code, box_id)
        self.writer_key = writer_key
        self.version = hashlib.blake2b(
            b"".join(d.version() for _, d in sorted(self.registry.documents.items())),
            digest_size=16,
        ).digest()

    # ------------------------------------------------------------------ views

    def household(self, resident_id: str, today: date) -> dict[str, Any] | None:
        resident = self.data.residents.get(resident_id)
        if resident is None:
            return None
        members = self.data.members_of(resident.household_id, living_only=False)
        table = gaiji_table(self.gaiji)
        return {
            "household_id": resident.household_id,
            "members": [
                {"id": r.id, "name": r.name.translate(table), "kana": r.kana,
                 "relationship": r.relationship,
                 "removed": r.removal is not None}
                for r in sorted(members, key=lambda r: (r.relationship != "世帯主", r.birth_date))
            ],
            "choices": choices(self.data, resident_id, today),
            "fees": dict(self.town.fees),
        }  # fmt: skip

    def districts(self) -> list[dict[str, Any]]:
        counts: dict[str, list[int]] = {}
        for h in self.data.households.values():
            living = len(self.data.members_of(h.id))
            if living:
                entry = counts.setdefault(h.district, [0, 0])
                entry[0] += 1
                entry[1] += living
        return [
            {"name": name, "households": c[0], "residents": c[1]}
            for name, c in sorted(counts.items())
        ]

    def modes(self) -> counter_config.TownModes:
        if self.data_dir is None:
            return counter_config.TownModes()
        try:
            return counter_config.load(self.data_dir).modes(self.town.code)
        except counter_config.ConfigError as exc:
            log.error("counter configuration unreadable: %s", exc)
            return counter_config.TownModes()

    def context(self, now: datetime, *, fee_exemption: bool = False) -> IssuanceContext:
        modes = self.modes()
        # A drill box (renkei box --drill) runs on synthetic drill towns: 見本, D series.
        drill = box_mode.is_drill(self.data_dir)
        return IssuanceContext(
            data=replace(self.data, synthetic=True) if drill else self.data,
            drill=drill,
            now=now,
            blocks_checked_at=self.data_as_of,
            registry_checked_at=self.data_as_of,
            disaster_mode=modes.disaster_mode,
            disaster_fee_exemption=modes.fee_exemption and fee_exemption,
            copay_exemption=modes.copay_exemption,
            intake=self.intake.queue,
        )

    def _register_gaiji(self) -> None:
        """Once per worker: legacy 外字 codes print as the town's table says."""
        if not self._fonts_ready:
            from printing.fonts import default_registry

            default_registry().register_gaiji(self.gaiji)
            self._fonts_ready = True

    def printed(self, number: str) -> bytes | None:
        return self.registers.load(printed_key(self.town.code, number))

    # ------------------------------------------------------------------ certificates

    def issue(
        self, clerk: ClerkSession, form: dict[str, Any], desk: DeskInfo, now: datetime
    ) -> dict[str, Any]:
        try:
            request = parse_request(self.town.code, form)
        except CounterFormError as exc:
            raise CounterError(str(exc)) from exc
        wants_reduction = str(form.get("reduction", "")) == "disaster"
        decision = decide(request, self.context(now, fee_exemption=wants_reduction))
        if not decision.issued:
            refusal = decision.refusal
            return {
                "ok": True,
                "issued": False,
                "outcome": decision.outcome.value,
                "intake": decision.outcome is Outcome.INTAKE_ONLY,
                "document": request.document.value,
                "reason": refusal.reason if refusal else "",
                "tell_applicant": refusal.tell_applicant if refusal else "",
                "code": refusal.code if refusal else "",
            }
        printing_on = str(form.get("output", "")) == "print"
        if printing_on and not desk.queue:
            raise CounterError(NO_PRINTER)
        # The host's office: a visiting clerk's cash is the stricken town's revenue, shown
        # to the host's cashier as held for it (日計表).
        host = desk.host_town or self.town.code
        office_desk = Desk(host, self.box_id, desk.terminal, desk.printer)
        entries = self.office.issue(
            decision, self.data, office_desk, Operator(clerk.login_id, self.town.code), now
        )
        copies = []
        for entry in entries:
            self._keep_request(entry.number, form)
            copies.append(
                self._produce(
                    entry.number,
                    lambda issue, signer: self._render(decision, issue, signer, form),
                    clerk,
                    desk,
                    now,
                    stale=decision.stale,
                    official=request.requester is RequesterKind.OFFICIAL,
                    queue=desk.queue if printing_on else "",
                )
            )
        fee = decision.fee
        return {
            "ok": True,
            "issued": True,
            "document": request.document.value,
            "label": request.document.label,
            "subjects": list(decision.subject_ids),
            "requester": request.requester.value,
            "copies": copies,
            "fee": fee.payable if fee else 0,
            "fee_gross": fee.gross if fee else 0,
            "reduction": fee.reduction.value if fee else "",
            "receipt": entries[0].receipt_number,
            "handover": decision.handover.value,
            "notes": list(decision.notes),
        }

    def _produce(
        self,
        number: str,
        render: Any,
        clerk: ClerkSession,
        desk: DeskInfo,
        now: datetime,
        *,
        stale: bool,
        official: bool = False,
        copy_number: int = 0,
        queue: str = "",
    ) -> dict[str, Any]:
        """Render one numbered copy, keep it sealed, print it if asked. A copy that cannot
        be drawn exactly (a 外字 without a glyph) voids its number: nothing wrong is
        printed, and the number is never reused."""
        from printing.errors import PrintingError
        from printing.layout import Issue, IssueNumber, Signer

        self._register_gaiji()
        signer = Signer(clerk.keys, clerk.certificate, desk.audit_head, self.version)
        issue = Issue(
            town=self.town,
            number=IssueNumber.parse(number),
            issued_at=now,
            data_as_of=self.data_as_of,
            host_office=desk.host_office,
            stale=stale,
            official_use=official,
            plain_paper=True,
            copy_number=copy_number,
        )
        try:
            document = render(issue, signer)
        except PrintingError as exc:
            self.office.numbers.void(
                IssueNumberParse.parse(number), at=now, reason=f"印刷不可: {exc.message}",
                sheets=0, clerk_id=clerk.login_id,
            )  # fmt: skip
            raise CounterError(
                f"{exc.message}（発行番号 {number} は無効にしました。何も印刷していません。）"
            ) from exc
        # What was printed is kept, sealed, so the document can be reproduced exactly
        # (`renkei reprint`) rather than re-rendered from data that may have changed.
        self.registers.save(printed_key(self.town.code, number), document.pdf)
        copy: dict[str, Any] = {"number": number, "pages": document.pages, "job": ""}
        if queue:
            from printing.cups import CalibrationStore, print_document

            calibration = None
            if self.data_dir is not None:
                calibration = CalibrationStore(self.data_dir / "calibration.json").get(queue)
            try:
                copy["job"] = print_document(document, queue, calibration=calibration).job_id
            except PrintingError as exc:
                copy["print_error"] = exc.message
        copy["pdf"] = document.pdf.hex()
        return copy

    def _render(self, decision: Decision, issue: Any, signer: Any, form: dict[str, Any]) -> Any:
        # Imported here: fonts and fpdf load only when a town's worker first prints.
        from printing.certificates import juminhyo, nhi, tax

        kind = decision.request.document
        people = [self.data.residents[rid] for rid in decision.subject_ids]
        person = people[0]
        household = self.data.households[person.household_id]
        address = juminhyo.full_address(self.town, household)
        if kind is DocumentKind.JUMINHYO:
            items = juminhyo.JuminhyoItems(
                head_and_relationship=Item.HEAD_AND_RELATIONSHIP in decision.items,
                honseki=Item.HONSEKI in decision.items,
                juminhyo_code=Item.JUMINHYO_CODE in decision.items,
                my_number=Item.MY_NUMBER in decision.items,
                foreign_status=Item.RESIDENCE_STATUS in decision.items,
            )
            individual = str(form.get("form", "")) == "individual"
            return juminhyo.render_juminhyo(
                issue,
                household,
                people,
                items,
                signer,
                form=juminhyo.Form.INDIVIDUAL if individual else juminhyo.Form.HOUSEHOLD,
                whole_household=decision.request.whole_household,
                head=self.data.residents.get(household.head_id),
            )
        facts = decision.tax
        if kind in (DocumentKind.KAZEI, DocumentKind.HIKAZEI):
            assert facts is not None and facts.assessment is not None
            return tax.render_income_certificate(issue, person, facts.assessment, signer)
        if kind is DocumentKind.NOZEI:
            assert facts is not None and facts.payment is not None
            return tax.render_payment_certificate(
                issue,
                person,
                address,
                self.data.installments_of(person.id),
                signer,
                taxes=[facts.payment.tax],
                fiscal_years=[facts.payment.fiscal_year],
            )
        if kind is DocumentKind.KEIJIDOSHA_KEIZOKU:
            assert facts is not None and facts.vehicle is not None
            return tax.render_vehicle_certificate(
                issue,
                person,
                address,
                facts.vehicle,
                self.data.vehicle_installments(facts.vehicle.id),
                signer,
            )
        member = self.data.nhi[person.id]
        if kind is DocumentKind.SHIKAKU_KAKUNIN:
            return nhi.render_eligibility_card(
                issue,
                member,
                person,
                signer,
                with_limit_category=str(form.get("limit_category", "")) == "1",
            )
        if kind is DocumentKind.SHIKAKU_OSHIRASE:
            return nhi.render_eligibility_notice(issue, member, person, address, signer)
        if kind is DocumentKind.MENJO:
            exemption = self.modes().copay_exemption
            if exemption is None:
                raise CounterError("一部負担金免除が宣言されていません。")
            return nhi.render_copay_exemption(
                issue,
                member,
                person,
                address,
                signer,
                disaster=exemption.disaster,
                valid_from=exemption.valid_from,
                valid_until=exemption.valid_until,
                reason=exemption.reason,
            )
        raise CounterError(f"「{kind.label}」はこの窓口では印刷できません。")

    def _keep_request(self, number: str, form: dict[str, Any]) -> None:
        """The form behind a copy, sealed: a jammed copy is reprinted from it."""
        raw = json.dumps(form, ensure_ascii=False, sort_keys=True).encode()
        self.registers.save((self.town.code, "request", number), raw)

    def spoil_and_reprint(
        self,
        clerk: ClerkSession,
        number: str,
        form: dict[str, Any],
        desk: DeskInfo,
        now: datetime,
    ) -> dict[str, Any]:
        """A jammed or misprinted copy (書き損じ): its number is voided with the reason and
        its sheets booked as spoiled; the same request is decided again on today's data
        and printed under a new number that points back to the voided one (the fee
        carried over, not charged twice)."""
        raw = self.registers.load((self.town.code, "request", number))
        if raw is None:
            raise CounterError(f"発行番号 {number} の請求内容がこの機器にありません。")
        reason = str(form.get("reason", "")).strip()[:100] or "紙詰まり"
        try:
            sheets = max(0, min(int(str(form.get("sheets", "1")) or "1"), 50))
        except ValueError as exc:
            raise CounterError("損じた枚数は数字で入力してください。") from exc
        original = json.loads(raw)
        request = parse_request(self.town.code, original)
        wants_reduction = str(original.get("reduction", "")) == "disaster"
        decision = decide(request, self.context(now, fee_exemption=wants_reduction))
        operator = Operator(clerk.login_id, self.town.code)
        try:
            self.office.spoil(number, at=now, reason=reason, sheets=sheets, operator=operator)
        except IssuanceError as exc:
            raise CounterError(str(exc)) from exc
        if not decision.issued:
            refusal = decision.refusal
            return {
                "ok": True, "issued": False, "spoiled": number,
                "outcome": decision.outcome.value, "document": request.document.value,
                "reason": (refusal.reason if refusal else "")
                + f"（発行番号 {number} は無効にしました。再印刷はできません。）",
                "tell_applicant": refusal.tell_applicant if refusal else "",
                "code": refusal.code if refusal else "",
            }  # fmt: skip
        host = desk.host_town or self.town.code
        entry = self.office.reprint(
            number, at=now, desk=Desk(host, self.box_id, desk.terminal, desk.printer),
            operator=operator,
        )  # fmt: skip
        self._keep_request(entry.number, original)
        printing_on = str(form.get("output", "")) == "print"
        copy = self._produce(
            entry.number,
            lambda issue, signer: self._render(decision, issue, signer, original),
            clerk, desk, now, stale=decision.stale,
            official=request.requester is RequesterKind.OFFICIAL,
            queue=desk.queue if printing_on else "",
        )  # fmt: skip
        return {
            "ok": True, "issued": True, "document": request.document.value,
            "label": request.document.label, "subjects": list(decision.subject_ids),
            "requester": request.requester.value, "copies": [copy], "fee": 0,
            "reduction": "", "handover": decision.handover.value,
            "notes": [f"発行番号 {number}（{reason}、{sheets}枚損じ）に代わる再印刷です。"
                      "手数料は元の交付で収納済みです。"],
            "spoiled": number, "spoiled_reason": reason, "spoiled_sheets": sheets,
        }  # fmt: skip

    # ------------------------------------------------------------------ lists

    def list_copy(
        self, clerk: ClerkSession, form: dict[str, Any], desk: DeskInfo, now: datetime
    ) -> dict[str, Any]:
        """A numbered, logged copy of the 全住民一覧 of one district (or the 要支援者名簿)."""
        from printing import lists as printed_lists
        from shared.issuance.lists import _protected_ids

        which = str(form.get("list", "all"))
        district = str(form.get("district", ""))[:40]
        recipient = str(form.get("recipient", "")).strip()[:100]
        purpose = str(form.get("purpose", "")).strip()[:200]
        leaves = str(form.get("leaves_office", "")) == "1"
        if which not in ("all", "support"):
            raise CounterError("名簿の種類を選んでください。")
        if which == "support" and not (clerk.roles & LIST_ROLES):
            raise CounterError("避難行動要支援者名簿は監督者・代表者だけが出力できます。")
        if which == "all" and district not in {d["name"] for d in self.districts()}:
            raise CounterError(f"大字「{district}」は当町の記録にありません。")
        printing_on = str(form.get("output", "")) == "print"
        if printing_on and not desk.queue:
            raise CounterError(NO_PRINTER)
        day = now.astimezone(JST).date()
        try:
            if which == "all":
                copy, rows = print_safety_list(
                    self.lists, self.data, district=district, recipient=recipient,
                    purpose=purpose, leaves_office=leaves, at=now, clerk_id=clerk.login_id,
                )  # fmt: skip
            else:
                leaves = True
                copy, rows = print_support_list(
                    self.lists, self.support_needs, self.data, recipient=recipient,
                    purpose=purpose, at=now, clerk_id=clerk.login_id,
                )  # fmt: skip
        except IssuanceError as exc:
            raise CounterError(str(exc)) from exc
        number = str(self.office.numbers.allocate(day, desk.terminal, desk.printer))
        masked = frozenset(_protected_ids(self.data, day)) if leaves else frozenset()
        serial = int(copy.number.rsplit("-", 1)[1])
        households = [h for h in self.data.households.values() if h.district == district]

        def render(issue: Any, signer: Any) -> Any:
            if which == "all":
                ids = {h.id for h in households}
                residents = [r for r in self.data.residents.values() if r.household_id in ids]
                return printed_lists.render_resident_list(
                    issue, households, residents, signer, masked_ids=masked,
                    leaving_office=leaves,
                )  # fmt: skip
            return printed_lists.render_support_register(
                issue, self.support_needs, self.data.residents, self.data.households, signer,
                masked_ids=masked,
            )  # fmt: skip

        produced = self._produce(
            number, render, clerk, desk, now, stale=False, copy_number=serial,
            queue=desk.queue if printing_on else "",
        )  # fmt: skip
        return {
            "ok": True,
            "issued": True,
            "document": "zenjumin" if which == "all" else "yoshien",
            "label": copy.kind.value,
            "list_number": copy.number,
            "district": district,
            "rows": len(rows),
            "masked": copy.masked,
            "copies": [produced],
            "fee": 0,
            "reduction": "",
            "handover": "窓口交付",
            "notes": [],
        }

    # ------------------------------------------------------------------ intake

    def take_intake(
        self, clerk: ClerkSession, form: dict[str, Any], desk: DeskInfo, now: datetime
    ) -> dict[str, Any]:
        """Record an application (sealed), add it to the intake queue, print a receipt.
        Nothing in the registry changes."""
        from printing.errors import PrintingError
        from printing.receipt import render_intake_receipt

        kind = FORM_KINDS.get(str(form.get("kind", "")))
        if kind is None:
            raise CounterError("受付の種類を選んでください。")
        subject_id = str(form.get("subject", ""))[:64]
        person = self.data.residents.get(subject_id)
        if subject_id and person is None:
            raise CounterError("対象者が当町の記録に見つかりません。")
        document = BY_KEY.get(str(form.get("document", "")))
        try:
            application = self.intake.take(
                kind=kind,
                at=now,
                document=document.label if document else "",
                subject_id=subject_id,
                subject_name=person.name if person else str(form.get("subject_name", ""))[:100],
                applicant_name=str(form.get("applicant_name", ""))[:100],
                contact=str(form.get("contact", ""))[:100],
                send_to=str(form.get("send_to", ""))[:200],
                details=str(form.get("details", ""))[:300],
                reason=str(form.get("reason", ""))[:200],
                clerk_id=clerk.login_id,
                terminal=desk.terminal,
            )
        except IntakeError as exc:
            raise CounterError(str(exc)) from exc
        rows = [
            ("受付の種類", application.kind.value),
            ("証明書", application.document),
            ("対象者", application.subject_name),
            ("申請者", application.applicant_name),
            ("連絡先", application.contact),
            ("送付先", application.send_to),
            ("内容", application.details),
            ("受付の理由", application.reason),
        ]
        steps = (
            "記録が最新になりしだい、町が内容を確認して処理します。証明書は送付先へ郵送します。"
            "届出の結果や不明な点は連絡先へご連絡します。"
        )
        self._register_gaiji()
        try:
            pdf = render_intake_receipt(self.town, application.number, now, rows, steps)
        except PrintingError as exc:
            raise CounterError(f"受付は記録しました（{application.number}）が、受付票を"
                               f"印刷できません: {exc.message}") from exc  # fmt: skip
        self.intake.keep_receipt(application.number, pdf)
        return {
            "ok": True,
            "number": application.number,
            "kind": application.kind.value,
            "subject": subject_id,
            "pdf": pdf.hex(),
        }

    def intake_list(self) -> list[dict[str, str]]:
        return [
            {**a.to_json(), "received_label": a.received_label} for a in self.intake.applications()
        ]

    # ------------------------------------------------------------------ exports

    def export(
        self, clerk: ClerkSession, form: dict[str, Any], desk: DeskInfo, now: datetime
    ) -> dict[str, Any]:
        """A file sealed to the town (edge.exports): the intake list, or a district's
        全住民一覧 as CSV — logged as a numbered list copy that leaves the office (people
        under 支援措置 masked)."""
        from edge.exports import SUFFIX, seal_export

        what = str(form.get("what", ""))
        stamp = now.astimezone(JST).strftime("%Y%m%d-%H%M")
        if what == "intake":
            data, name, list_number = self.intake.export_csv(), f"intake-{stamp}", ""
            rows = len(self.intake.applications())
        elif what == "list":
            district = str(form.get("district", ""))[:40]
            if district not in {d["name"] for d in self.districts()}:
                raise CounterError(f"大字「{district}」は当町の記録にありません。")
            try:
                copy, listed = print_safety_list(
                    self.lists, self.data, district=district,
                    recipient=str(form.get("recipient", "")).strip()[:100],
                    purpose=str(form.get("purpose", "")).strip()[:200],
                    leaves_office=True, at=now, clerk_id=clerk.login_id,
                )  # fmt: skip
            except IssuanceError as exc:
                raise CounterError(str(exc)) from exc
            data = _list_csv(copy.number, listed)
            name, rows, list_number = f"zenjumin-{copy.number}-{stamp}", len(listed), copy.number
        else:
            raise CounterError("出力する内容を選んでください。")
        blob = seal_export(data, what, name, self.keyring.public, self.box_id, self.writer_key)
        return {"ok": True, "name": name + ".csv" + SUFFIX, "file": blob.hex(), "rows": rows,
                "list_number": list_number, "what": what}  # fmt: skip


def _list_csv(copy_number: str, rows: list[Any]) -> bytes:
    import csv
    import io

    from shared.wareki import to_wareki

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["配布番号", copy_number])
    writer.writerow(["大字", "番地", "世帯番号", "氏名", "フリガナ", "生年月日", "性別",
                     "安否確認", "備考"])  # fmt: skip
    for r in rows:
        writer.writerow(
            [r.district, r.address, r.household_id, r.name, r.kana,
             to_wareki(r.birth_date) if r.birth_date else "", r.sex.value if r.sex else "",
             "", r.reason]
        )  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def printed_key(town: str, number: str) -> tuple[str, ...]:
    """Where an issued document's PDF is kept (sealed to the town): by its 発行番号."""
    return (town, "printed", number.split(" ")[0])


def warm_up() -> None:
    """Import what printing a document needs (fpdf, fontTools, cryptography: seconds of
    imports on a box's CPU) before the first request at the counter waits for it. The
    worker calls this in the background when it starts, while the clerk logs in."""
    import printing.certificates
    import printing.cups
    import printing.errors
    import printing.fonts
    import printing.layout
    import printing.receipt  # noqa: F401


def town_data(registry: TownRegistry, town: Town) -> TownData:
    """The town's records for the counter. Residents and households are read now (search,
    lists and every form need them); a person's tax, insurance and vehicle records are
    read with the shard that holds that person, at the first request that needs them, so
    the first request after the town opens does not read the whole town's tax book."""
    base = TownData.build(
        town,
        registry.objects("residents"),
        registry.objects("households"),
        registry.objects("support_blocks"),
    )
    shards, shard_of = registry.shards, registry.person_shard

    # a 課税 record's id is `resident/year` (shared.records.record_id): a request reads
    # its person's ids and the records it needs, decoding no one else's
    def assessment_keys(resident_id: str) -> list[tuple[str, int]]:
        prefix = f"{resident_id}/"
        ids = registry.shard_ids("tax_assessments", shard_of(resident_id))
        return [(resident_id, int(i[len(prefix) :])) for i in ids if i.startswith(prefix)]

    def assessment(key: tuple[str, int]) -> TaxAssessment | None:
        found = registry.shard_get("tax_assessments", shard_of(key[0]), f"{key[0]}/{key[1]}")
        return found if isinstance(found, TaxAssessment) else None

    def every_assessment() -> dict[tuple[str, int], TaxAssessment]:
        found = registry.objects("tax_assessments")
        return {(a.resident_id, a.fiscal_year): a for a in found}

    def installments(index: int) -> dict[str, tuple[Installment, ...]]:
        by_taxpayer: dict[str, list[Installment]] = {}
        for bill in registry.shard_objects("installments", index):
            by_taxpayer.setdefault(bill.taxpayer_id, []).append(bill)
        return {k: tuple(v) for k, v in by_taxpayer.items()}

    def nhi(index: int) -> dict[str, NhiMember]:
        return {m.resident_id: m for m in registry.shard_objects("nhi_members", index)}

    def vehicles(index: int) -> dict[str, Vehicle]:
        return {v.id: v for v in registry.shard_objects("vehicles", index)}

    # every 期 billed for a vehicle, whoever owned it then: its bills lie in the shards of
    # each owner, so a vehicle's 納税証明 reads one field of every bill (which vehicle)
    # and decodes only that vehicle's
    bills_of: dict[str, list[tuple[int, str]]] | None = None

    def vehicle_bills(vehicle_id: str) -> tuple[Installment, ...] | None:
        nonlocal bills_of
        if bills_of is None:
            bills_of = {}
            for index in range(shards):
                for bill_id, rec in registry.shard_fields(
                    "installments", index, ["vehicle_id"]
                ).items():
                    if rec.get("vehicle_id"):
                        bills_of.setdefault(str(rec["vehicle_id"]), []).append((index, bill_id))
        found = [registry.shard_get("installments", i, b) for i, b in bills_of.get(vehicle_id, [])]
        bills = tuple(b for b in found if isinstance(b, Installment))
        return bills or None

    def every_vehicle_bill() -> dict[str, tuple[Installment, ...]]:
        bills: dict[str, list[Installment]] = {}
        for bill in registry.objects("installments"):
            if bill.vehicle_id:
                bills.setdefault(bill.vehicle_id, []).append(bill)
        return {k: tuple(v) for k, v in bills.items()}

    return replace(
        base,
        assessments=LookupMap(assessment_keys, assessment, every_assessment),
        installments=ShardedMap(shards, installments, lambda key: key, shard_of),
        nhi=ShardedMap(shards, nhi, lambda key: key, shard_of),
        # a vehicle's id does not name its owner: the owner's shard serves `vehicles_of`,
        # a lookup by id reads every shard's (small) vehicle table once
        vehicles=ShardedMap(shards, vehicles, None, shard_of),
        _by_vehicle=LookupMap(lambda _: [], vehicle_bills, every_vehicle_bill),
    )


def registers_storage(
    storage: Storage, keyring: crypto.KeyRing, box_id: str, writer_key: SigningKey
) -> SealedStorage:
    """The town's registers on this box: sealed to the town, signed by the box's key."""
    writer_id = f"registers:{box_id}"
    verify_key = writer_key.verify_key
    return SealedStorage(
        storage,
        keyring.public,
        writer_key,
        writer_id,
        keyring,
        lambda w: verify_key if w == writer_id else None,
    )


def _as_of(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) - timedelta(days=365)  # unknown: treated as stale
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
