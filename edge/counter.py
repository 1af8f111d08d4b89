"""The counter inside a town's worker: a request for a 住民票の写し goes through the
issuance rules (`shared.issuance.decide`), is numbered and registered
(`IssuanceOffice`, sealed to the town at rest), and rendered (`printing`).

Only the worker runs this: it needs the town's records, the town's key ring (to seal the
registers) and the issuing clerk's keys (to sign the certificate's QR). The web front
gets back the decision and, when issued, the PDF it hands to the browser.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nacl.signing import SigningKey

from shared import crypto
from shared.export_csv import town_json
from shared.issuance import (
    Applicant,
    Decision,
    Desk,
    DocumentKind,
    IdDocumentKind,
    Identity,
    IdentityMethod,
    IssuanceContext,
    IssuanceOffice,
    Item,
    Operator,
    Request,
    RequesterKind,
    TownData,
    decide,
)
from shared.registry import TownRegistry
from shared.sealed_storage import SealedStorage
from shared.storage import Storage

# The web form's optional items → the rules' items.
FORM_ITEMS = {
    "head": Item.HEAD_AND_RELATIONSHIP,
    "honseki": Item.HONSEKI,
    "code": Item.JUMINHYO_CODE,
    "my_number": Item.MY_NUMBER,
}


class CounterError(Exception):
    """A request the counter cannot even consider (the message is for the clerk)."""


@dataclass(frozen=True, slots=True)
class ClerkSession:
    login_id: str
    keys: crypto.ClerkKeys
    certificate: crypto.ClerkCertificate


class Counter:
    def __init__(
        self,
        registry: TownRegistry,
        keyring: crypto.KeyRing,
        storage: Storage,
        box_id: str,
        data_as_of: str,
        writer_key: SigningKey,
    ) -> None:
        settings = registry.get("town", "settings")
        if settings is None:
            raise CounterError("町村の設定（公印規程・手数料）がまだ届いていません。")
        self.town = town_json.parse_town(settings.json)
        self.registry = registry
        self.keyring = keyring
        self.box_id = box_id
        self.data_as_of = _as_of(data_as_of)
        self.data = TownData.build(
            self.town,
            registry.objects("residents"),
            registry.objects("households"),
            registry.objects("support_blocks"),
            registry.objects("tax_assessments"),
            registry.objects("installments"),
            registry.objects("vehicles"),
            registry.objects("nhi_members"),
        )
        # Registers are sealed to the town and signed by the box's own key, so they still
        # verify after the worker restarts (numbers must never be reused).
        registers = registers_storage(storage, keyring, box_id, writer_key)
        self.registers = registers
        self.office = IssuanceOffice(registers, self.town.code, box_id)

    def household(self, resident_id: str) -> dict[str, Any] | None:
        resident = self.data.residents.get(resident_id)
        if resident is None:
            return None
        home = resident.household_id
        members = [r for r in self.data.residents.values() if r.household_id == home]
        return {
            "household_id": resident.household_id,
            "members": [
                {"id": r.id, "name": r.name, "kana": r.kana, "relationship": r.relationship,
                 "removed": r.removal is not None}
                for r in sorted(members, key=lambda r: (r.relationship != "世帯主", r.birth_date))
            ],
        }  # fmt: skip

    def issue(self, clerk: ClerkSession, form: dict[str, Any], now: datetime) -> dict[str, Any]:
        request = _request(self.town.code, form)
        context = IssuanceContext(
            data=self.data,
            now=now,
            blocks_checked_at=self.data_as_of,
            registry_checked_at=self.data_as_of,
        )
        decision = decide(request, context)
        if not decision.issued:
            refusal = decision.refusal
            return {
                "ok": True,
                "issued": False,
                "outcome": decision.outcome.value,
                "reason": refusal.reason if refusal else "",
                "tell_applicant": refusal.tell_applicant if refusal else "",
            }
        desk = Desk(self.town.code, self.box_id, str(form.get("terminal", "T01")), "P01")
        entries = self.office.issue(
            decision, self.data, desk, Operator(clerk.login_id, self.town.code), now
        )
        pdf = self._render(decision, entries[0].number, clerk, now)
        # What was printed is kept, sealed, so the document can be reproduced exactly
        # (`renkei reprint`) rather than re-rendered from data that may have changed.
        self.registers.save(printed_key(self.town.code, entries[0].number), pdf)
        return {
            "ok": True,
            "issued": True,
            "number": entries[0].number,
            "fee": decision.fee.payable if decision.fee else 0,
            "handover": decision.handover.value,
            "pdf": pdf.hex(),
        }

    def _render(
        self, decision: Decision, number: str, clerk: ClerkSession, now: datetime
    ) -> bytes:
        # Imported here: fonts and fpdf load only when a town's worker first prints.
        from printing.certificates.juminhyo import Form, JuminhyoItems, render_juminhyo
        from printing.layout import Issue, IssueNumber, Signer

        members = [self.data.residents[rid] for rid in decision.subject_ids]
        household = self.data.households[members[0].household_id]
        items = JuminhyoItems(
            head_and_relationship=Item.HEAD_AND_RELATIONSHIP in decision.items,
            honseki=Item.HONSEKI in decision.items,
            juminhyo_code=Item.JUMINHYO_CODE in decision.items,
            my_number=Item.MY_NUMBER in decision.items,
        )
        version = hashlib.blake2b(
            b"".join(d.version() for _, d in sorted(self.registry.documents.items())),
            digest_size=16,
        ).digest()
        signer = Signer(clerk.keys, clerk.certificate, audit_head=bytes(32), data_version=version)
        issue = Issue(
            town=self.town,
            number=IssueNumber.parse(number.split(" ")[0]),
            issued_at=now,
            data_as_of=self.data_as_of,
            stale=decision.stale,
            plain_paper=True,
        )
        document = render_juminhyo(
            issue,
            household,
            members,
            items,
            signer,
            form=Form.HOUSEHOLD,
            whole_household=decision.request.whole_household,
        )
        return document.pdf


def printed_key(town: str, number: str) -> tuple[str, ...]:
    """Where an issued document's PDF is kept (sealed to the town): by its 発行番号."""
    return (town, "printed", number.split(" ")[0])


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


def _request(town: str, form: dict[str, Any]) -> Request:
    try:
        requester = RequesterKind(str(form.get("requester", "")))
        method = IdentityMethod(str(form.get("identity", "")))
        documents = tuple(IdDocumentKind(d) for d in form.get("documents", []) if d)
    except ValueError as exc:
        raise CounterError("請求者区分と本人確認の方法を選んでください。") from exc
    subject = str(form.get("subject", ""))
    if not subject:
        raise CounterError("対象者が指定されていません。")
    applicant = Applicant(
        name=str(form.get("applicant_name", "")),
        resident_id=str(form.get("applicant_id", "")),
        address=str(form.get("applicant_address", "")),
    )
    return Request(
        town_code=town,
        document=DocumentKind.JUMINHYO,
        subject_ids=(subject,),
        requester=requester,
        applicant=applicant,
        identity=Identity(method, documents),
        items=frozenset(FORM_ITEMS[k] for k in form.get("items", []) if k in FORM_ITEMS),
        whole_household=bool(form.get("whole_household")),
    )


