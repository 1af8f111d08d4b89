"""The counter's documents: the request form's fields → an issuance `Request`, and an
issued `Decision` → the printed document.

Why one module: the form, the rules and the renderers name the same things differently
(the form's ``kazei``, the rules' `DocumentKind.KAZEI`, the renderer's
`render_income_certificate`); this is the one table that joins them. The form fields are
a public interface — `renkei drill` posts them over HTTP — and are listed in
docs/counter.md; keep them stable.

Request fields (POST /issue, ``application/x-www-form-urlencoded``; repeatable ones may
appear more than once):

    document        juminhyo | kazei | hikazei | nozei | keijidosha_keizoku |
                    shikaku_kakunin | shikaku_oshirase | menjo        (default juminhyo)
    subject         宛名番号 (repeatable: chosen members of one household)
    whole_household 1 = 世帯全員 (住民票)
    form            household (世帯連記式, default) | individual (個人票)
    items           head | honseki | code | my_number | foreign      (repeatable)
    fiscal_year     年度, 西暦 (tax certificates)
    tax_kind        個人住民税 | 固定資産税 | 軽自動車税 | 国民健康保険税 (納税証明書)
    vehicle_id      車両ID (継続検査用)
    limit_category  1 = 限度区分を記載 (資格確認書)
    copies          通数 (default 1)
    requester       請求者区分 (本人, 同一世帯員, 法定代理人, 任意代理人, 第三者, 職務上請求, 公用)
    applicant_name, applicant_id, applicant_address, applicant_phone
    identity        本人確認の方法; documents: kinds shown (repeatable, never numbers)
    poa_signed=1, poa_date (YYYY-MM-DD), poa_agent, poa_items (repeatable)   任意代理人
    legal_basis (親権者 | 成年後見人等), legal_proof                           法定代理人
    tp_ground, tp_purpose, tp_submitted_to                                    第三者
    pro_profession, pro_registration, pro_serial, pro_purpose, pro_submitted_to 職務上請求
    off_agency, off_officer, off_basis, off_purpose                           公用
    reduction       "" | disaster   (災害減免; only while the town's exemption is on)
    output          download (default) | print  (this terminal's printer)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.issuance import (
    Applicant,
    DocumentKind,
    IdDocumentKind,
    Identity,
    IdentityMethod,
    Item,
    Request,
    RequesterKind,
    TownData,
)
from shared.issuance.requests import (
    LegalBasis,
    LegalRepresentation,
    OfficialUse,
    PowerOfAttorney,
    Profession,
    ProfessionalRequest,
    ThirdPartyGround,
    ThirdPartyPurpose,
)
from shared.model import TaxKind

MAX_COPIES = 10


class CounterFormError(Exception):
    """A form the counter cannot turn into a request (the message is for the clerk)."""


class Field(enum.StrEnum):
    """Which optional parts of the form a document uses."""

    ITEMS = "items"
    HOUSEHOLD = "household"
    FISCAL_YEAR = "fiscal_year"
    TAX_KIND = "tax_kind"
    VEHICLE = "vehicle"
    LIMIT = "limit_category"


@dataclass(frozen=True, slots=True)
class CounterDocument:
    kind: DocumentKind
    fields: frozenset[Field] = frozenset()

    @property
    def key(self) -> str:
        return self.kind.value

    @property
    def label(self) -> str:
        return self.kind.label


COUNTER_DOCUMENTS: tuple[CounterDocument, ...] = (
    CounterDocument(DocumentKind.JUMINHYO, frozenset({Field.ITEMS, Field.HOUSEHOLD})),
    CounterDocument(DocumentKind.KAZEI, frozenset({Field.FISCAL_YEAR})),
    CounterDocument(DocumentKind.HIKAZEI, frozenset({Field.FISCAL_YEAR})),
    CounterDocument(DocumentKind.NOZEI, frozenset({Field.FISCAL_YEAR, Field.TAX_KIND})),
    CounterDocument(DocumentKind.KEIJIDOSHA_KEIZOKU, frozenset({Field.VEHICLE})),
    CounterDocument(DocumentKind.SHIKAKU_KAKUNIN, frozenset({Field.LIMIT})),
    CounterDocument(DocumentKind.SHIKAKU_OSHIRASE),
    CounterDocument(DocumentKind.MENJO),
)
BY_KEY: dict[str, CounterDocument] = {d.key: d for d in COUNTER_DOCUMENTS}

# The form's optional items → the rules' items.
FORM_ITEMS = {
    "head": Item.HEAD_AND_RELATIONSHIP,
    "honseki": Item.HONSEKI,
    "code": Item.JUMINHYO_CODE,
    "my_number": Item.MY_NUMBER,
    "foreign": Item.RESIDENCE_STATUS,
}
ITEM_LABELS = {
    "head": "世帯主の氏名及び続柄",
    "honseki": "本籍・筆頭者",
    "code": "住民票コード",
    "my_number": "個人番号",
    "foreign": "在留資格等（外国人住民）",
}


def document_for(key: str) -> CounterDocument:
    try:
        return BY_KEY[key or DocumentKind.JUMINHYO.value]
    except KeyError as exc:
        raise CounterFormError(f"証明書の種類「{key}」はこの窓口では扱っていません。") from exc


def _one(form: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()[:limit]


def _many(form: Mapping[str, Any], name: str, limit: int = 12) -> list[str]:
    value = form.get(name, [])
    values = value if isinstance(value, list) else [value]
    return [str(v).strip()[:64] for v in values if str(v).strip()][:limit]


def _int(form: Mapping[str, Any], name: str, what: str) -> int | None:
    text = _one(form, name, 8)
    if not text:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise CounterFormError(f"{what}は数字で入力してください（{text}）。") from exc


def _date(text: str, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CounterFormError(f"{what}は 2026-11-27 の形で入力してください（{text}）。") from exc


def _enum(cls: type[enum.StrEnum], text: str, what: str) -> Any:
    try:
        return cls(text)
    except ValueError as exc:
        raise CounterFormError(f"{what}を選んでください。") from exc


def parse_request(town: str, form: Mapping[str, Any]) -> Request:
    """The request a form describes; CounterFormError when it is incomplete or garbled
    (a *refusal* is the rules' business, not this function's)."""
    document = document_for(_one(form, "document"))
    subjects = tuple(dict.fromkeys(_many(form, "subject")))
    if not subjects:
        raise CounterFormError("対象者が指定されていません。")
    requester = _enum(RequesterKind, _one(form, "requester"), "請求者区分")
    method = _enum(IdentityMethod, _one(form, "identity"), "本人確認の方法")
    documents = tuple(_enum(IdDocumentKind, d, "確認した書類") for d in _many(form, "documents"))
    applicant = Applicant(
        name=_one(form, "applicant_name", 100),
        resident_id=_one(form, "applicant_id", 64),
        address=_one(form, "applicant_address", 200),
        phone=_one(form, "applicant_phone", 40),
    )
    copies = _int(form, "copies", "通数") or 1
    if not 1 <= copies <= MAX_COPIES:
        raise CounterFormError(f"通数は1から{MAX_COPIES}までです。")
    items = frozenset(FORM_ITEMS[k] for k in _many(form, "items") if k in FORM_ITEMS)
    tax_kind_text = _one(form, "tax_kind")
    return Request(
        town_code=town,
        document=document.kind,
        subject_ids=subjects,
        requester=requester,
        applicant=applicant,
        identity=Identity(method, documents),
        items=items,
        whole_household=_one(form, "whole_household") == "1",
        copies=copies,
        fiscal_year=_int(form, "fiscal_year", "年度"),
        tax_kind=_enum(TaxKind, tax_kind_text, "税目") if tax_kind_text else None,
        vehicle_id=_one(form, "vehicle_id", 64),
        power_of_attorney=_power_of_attorney(form, requester, document.kind),
        legal_representation=_legal(form, requester),
        third_party=_third_party(form, requester),
        professional=_professional(form, requester),
        official=_official(form, requester),
    )


def _power_of_attorney(
    form: Mapping[str, Any], requester: RequesterKind, kind: DocumentKind
) -> PowerOfAttorney | None:
    if requester is not RequesterKind.PROXY or not _one(form, "poa_agent"):
        return None
    return PowerOfAttorney(
        signed_by_person=_one(form, "poa_signed") == "1",
        dated=_date(_one(form, "poa_date"), "委任状の作成日"),
        agent_name=_one(form, "poa_agent", 100),
        # The clerk ticks 「委任事項に記載あり」 for the document asked for.
        scope=frozenset({kind}) if _one(form, "poa_scope") == "1" else frozenset(),
        items=frozenset(FORM_ITEMS[k] for k in _many(form, "poa_items") if k in FORM_ITEMS),
    )


def _legal(form: Mapping[str, Any], requester: RequesterKind) -> LegalRepresentation | None:
    basis = _one(form, "legal_basis")
    if requester is not RequesterKind.LEGAL_REPRESENTATIVE or not basis:
        return None
    return LegalRepresentation(
        _enum(LegalBasis, basis, "代理権の根拠"), _one(form, "legal_proof", 100)
    )


def _third_party(form: Mapping[str, Any], requester: RequesterKind) -> ThirdPartyPurpose | None:
    ground = _one(form, "tp_ground")
    if requester is not RequesterKind.THIRD_PARTY or not ground:
        return None
    return ThirdPartyPurpose(
        _enum(ThirdPartyGround, ground, "請求事由"),
        _one(form, "tp_purpose", 300),
        _one(form, "tp_submitted_to", 100),
    )


def _professional(form: Mapping[str, Any], requester: RequesterKind) -> ProfessionalRequest | None:
    profession = _one(form, "pro_profession")
    if requester is not RequesterKind.PROFESSIONAL or not profession:
        return None
    return ProfessionalRequest(
        _enum(Profession, profession, "士業の種別"),
        _one(form, "pro_registration", 40),
        _one(form, "pro_serial", 40),
        _one(form, "pro_purpose", 300),
        _one(form, "pro_submitted_to", 100),
    )


def _official(form: Mapping[str, Any], requester: RequesterKind) -> OfficialUse | None:
    agency = _one(form, "off_agency")
    if requester is not RequesterKind.OFFICIAL or not agency:
        return None
    return OfficialUse(
        agency[:100],
        _one(form, "off_officer", 100),
        _one(form, "off_basis", 100),
        _one(form, "off_purpose", 300),
    )


def form_from_post(items: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A posted form as the worker takes it: single fields as strings, the repeatable
    ones as lists, everything bounded (the front never forwards more than this)."""
    repeatable = {"subject", "items", "documents", "poa_items"}
    form: dict[str, Any] = {}
    for name, value in items[:200]:
        if len(name) > 32 or name == "csrf_token":
            continue
        if name in repeatable:
            form.setdefault(name, []).append(str(value)[:64])
        elif name not in form:
            form[name] = str(value)[:300]
    return form


# ---------------------------------------------------------------------------- choices


def choices(data: TownData, resident_id: str, today: date) -> dict[str, Any]:
    """What the form offers for this resident: fiscal years with an assessment, the taxes
    billed, owned vehicles, NHI membership — so a clerk picks rather than types."""
    years = sorted(data.assessment_years(resident_id), reverse=True)
    bills = data.installments_of(resident_id)
    vehicles = data.vehicles_of(resident_id)
    member = data.nhi.get(resident_id)
    return {
        "fiscal_years": years or [today.year if today.month >= 6 else today.year - 1],
        "payment_years": sorted({b.fiscal_year for b in bills}, reverse=True),
        "tax_kinds": [k.value for k in TaxKind if any(b.tax is k for b in bills)]
        or [k.value for k in TaxKind],
        "vehicles": [{"id": v.id, "plate": v.plate, "kind": v.vehicle_kind} for v in vehicles],
        "nhi_member": member is not None,
        "my_number_insurance": bool(member and member.has_my_number_insurance),
    }
