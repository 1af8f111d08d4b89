"""What a clerk enters at the counter: who is asking, how they proved it, for what.

住民基本台帳法 §12 makes the requester decide everything, so a `Request` always names its
請求者区分 (`RequesterKind`) and carries the papers that kind needs: a 委任状 for an
任意代理人, the basis of a 法定代理人, the purpose of a 第三者, the 士業 details of a
職務上請求, the agency of a 公用 request.

The 本人確認 records the method and the *kinds* of document shown. No type here has a
field for an identity document's number: a box that never stores one cannot leak one
(tests/shared/test_issuance_requests.py checks that no such field appears).

Document kinds use the town's fee keys (`Town.fees`, cloud/synthetic/towns.py FEE_KINDS)
as values, so a kind is also its key in the 手数料 table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from shared.model import TaxKind


class RequesterKind(enum.StrEnum):
    """請求者区分."""

    SELF = "本人"
    HOUSEHOLD = "同一世帯員"
    LEGAL_REPRESENTATIVE = "法定代理人"
    PROXY = "任意代理人"
    THIRD_PARTY = "第三者"
    PROFESSIONAL = "職務上請求"
    OFFICIAL = "公用"


class DocumentKind(enum.StrEnum):
    """A document asked for; the value is the town's 手数料 key."""

    JUMINHYO = "juminhyo"
    JOHYO = "juminhyo_jotaku"
    KISAI_JIKO = "kisai_jiko"
    FUHYO = "fuhyo"
    KAZEI = "kazei"
    HIKAZEI = "hikazei"
    NOZEI = "nozei"
    KEIJIDOSHA_KEIZOKU = "keijidosha_keizoku"
    SHIKAKU_KAKUNIN = "shikaku_kakunin"
    SHIKAKU_OSHIRASE = "shikaku_oshirase"
    MENJO = "menjo"
    INKAN = "inkan"
    RISAI = "risai"

    @property
    def label(self) -> str:
        return DOCUMENT_LABELS[self]


DOCUMENT_LABELS: dict[DocumentKind, str] = {
    DocumentKind.JUMINHYO: "住民票の写し",
    DocumentKind.JOHYO: "除票の写し",
    DocumentKind.KISAI_JIKO: "住民票記載事項証明書",
    DocumentKind.FUHYO: "戸籍の附票の写し",
    DocumentKind.KAZEI: "課税（所得）証明書",
    DocumentKind.HIKAZEI: "非課税証明書",
    DocumentKind.NOZEI: "納税証明書",
    DocumentKind.KEIJIDOSHA_KEIZOKU: "軽自動車税納税証明書（継続検査用）",
    DocumentKind.SHIKAKU_KAKUNIN: "国民健康保険資格確認書",
    DocumentKind.SHIKAKU_OSHIRASE: "資格情報のお知らせ",
    DocumentKind.MENJO: "一部負担金免除証明書",
    DocumentKind.INKAN: "印鑑登録証明書",
    DocumentKind.RISAI: "罹災証明書",
}

# Documents read from the resident record (they carry the item options and 支援措置 matters
# most for them); tax and insurance documents are listed for the entitlement table.
RESIDENT_DOCUMENTS = frozenset(
    {DocumentKind.JUMINHYO, DocumentKind.JOHYO, DocumentKind.KISAI_JIKO, DocumentKind.FUHYO}
)
TAX_DOCUMENTS = frozenset(
    {
        DocumentKind.KAZEI,
        DocumentKind.HIKAZEI,
        DocumentKind.NOZEI,
        DocumentKind.KEIJIDOSHA_KEIZOKU,
    }
)
NHI_DOCUMENTS = frozenset({DocumentKind.SHIKAKU_KAKUNIN, DocumentKind.SHIKAKU_OSHIRASE})
# BRIEF §4 "limits to state": taken as applications, processed after recovery.
INTAKE_ONLY_DOCUMENTS = frozenset({DocumentKind.MENJO, DocumentKind.INKAN, DocumentKind.RISAI})


class Item(enum.StrEnum):
    """An item of a resident-record document that the requester may ask to include."""

    HEAD_AND_RELATIONSHIP = "世帯主の氏名及び続柄"
    HONSEKI = "本籍・筆頭者"
    JUMINHYO_CODE = "住民票コード"
    MY_NUMBER = "個人番号"
    NATIONALITY = "国籍・地域"
    RESIDENCE_STATUS = "在留資格等"  # 30条45規定区分, 在留資格, 在留期間, 満了日
    ALIAS = "通称"


class Channel(enum.StrEnum):
    """How the request arrived."""

    COUNTER = "窓口"
    POST = "郵送請求"


class IdentityMethod(enum.StrEnum):
    """本人確認の方法 (of the person at the counter, or of the sender by post)."""

    PHOTO_ID = "顔写真付き書類1点"
    TWO_DOCUMENTS = "書類2点"
    ENCLOSED_COPY = "本人確認書類の写し同封"  # postal requests only
    ORAL_QUESTIONS = "口頭質問"  # only while the representative's disaster mode is on
    KNOWN_TO_STAFF = "職員面識"  # only while the representative's disaster mode is on


DISASTER_ONLY_METHODS = frozenset({IdentityMethod.ORAL_QUESTIONS, IdentityMethod.KNOWN_TO_STAFF})


class IdDocumentKind(enum.StrEnum):
    """The kind of identity document shown. Its number is never asked for nor stored."""

    MY_NUMBER_CARD = "マイナンバーカード"
    DRIVERS_LICENSE = "運転免許証"
    PASSPORT = "旅券"
    RESIDENCE_CARD = "在留カード"
    SPECIAL_PERMANENT_RESIDENT = "特別永住者証明書"
    DISABILITY_HANDBOOK = "身体障害者手帳"
    STAFF_ID = "職員証"
    PROFESSIONAL_ID = "士業の資格者証・補助者証"
    HEALTH_INSURANCE = "資格確認書・保険証"
    PENSION_BOOK = "年金手帳・年金証書"
    BANK_BOOK = "預金通帳・キャッシュカード"
    OTHER = "その他町長が認める書類"

    @property
    def has_photo(self) -> bool:
        return self in PHOTO_DOCUMENTS


PHOTO_DOCUMENTS = frozenset(
    {
        IdDocumentKind.MY_NUMBER_CARD,
        IdDocumentKind.DRIVERS_LICENSE,
        IdDocumentKind.PASSPORT,
        IdDocumentKind.RESIDENCE_CARD,
        IdDocumentKind.SPECIAL_PERMANENT_RESIDENT,
        IdDocumentKind.DISABILITY_HANDBOOK,
        IdDocumentKind.STAFF_ID,
        IdDocumentKind.PROFESSIONAL_ID,
    }
)


class LegalBasis(enum.StrEnum):
    PARENT = "親権者"
    GUARDIAN = "成年後見人等"


class ThirdPartyGround(enum.StrEnum):
    """住基法 §12-3 ①: the grounds on which a third party may ask."""

    OWN_RIGHTS = "自己の権利行使・義務履行"
    SUBMISSION_TO_AUTHORITY = "国・地方公共団体の機関への提出"
    OTHER_LEGITIMATE = "その他正当な理由"


class Profession(enum.StrEnum):
    """士業 who may make a 職務上請求 (住基法 §12-3 ②)."""

    LAWYER = "弁護士"
    JUDICIAL_SCRIVENER = "司法書士"
    LAND_SURVEYOR = "土地家屋調査士"
    TAX_ACCOUNTANT = "税理士"
    LABOUR_CONSULTANT = "社会保険労務士"
    PATENT_ATTORNEY = "弁理士"
    MARITIME_AGENT = "海事代理士"
    ADMINISTRATIVE_SCRIVENER = "行政書士"


# ---------------------------------------------------------------------------- papers


@dataclass(frozen=True, slots=True)
class Identity:
    """本人確認: the method and the kinds of document shown — and nothing else."""

    method: IdentityMethod
    documents: tuple[IdDocumentKind, ...] = ()


@dataclass(frozen=True, slots=True)
class Applicant:
    """The person in front of the clerk (or who wrote in). `resident_id` is set when the
    clerk found the applicant in this town's registry (本人, 同一世帯員)."""

    name: str
    kana: str = ""
    birth_date: date | None = None
    address: str = ""
    phone: str = ""
    resident_id: str = ""


@dataclass(frozen=True, slots=True)
class PowerOfAttorney:
    """委任状 as the clerk checked it. `items` lists optional items the person delegated
    explicitly (個人番号 and 住民票コード must be named to be asked for)."""

    signed_by_person: bool  # 委任者の自署（または記名押印）
    dated: date | None
    agent_name: str  # the 代理人 named on the 委任状
    scope: frozenset[DocumentKind]  # 委任事項
    items: frozenset[Item] = frozenset()


@dataclass(frozen=True, slots=True)
class LegalRepresentation:
    basis: LegalBasis
    proof: str  # kind of proof shown: 戸籍謄本, 登記事項証明書 … ("" when the registry shows it)


@dataclass(frozen=True, slots=True)
class ThirdPartyPurpose:
    ground: ThirdPartyGround
    purpose: str  # 利用目的, concretely
    submitted_to: str = ""  # 提出先


@dataclass(frozen=True, slots=True)
class ProfessionalRequest:
    """職務上請求: the 統一請求書 of a 士業 (the registration number is the 士業's public
    登録番号, not an identity-document number)."""

    profession: Profession
    registration: str  # 登録番号
    form_serial: str  # 職務上請求書の通し番号
    purpose: str  # 利用目的（業務の種類、依頼者）
    submitted_to: str  # 提出先


@dataclass(frozen=True, slots=True)
class OfficialUse:
    """公用請求 by a national or local government body (住基法 §12-2)."""

    agency: str  # 請求機関
    officer: str  # 担当者の職・氏名
    legal_basis: str  # 根拠法令
    purpose: str


# ---------------------------------------------------------------------------- request


@dataclass(frozen=True, slots=True)
class Request:
    """One request for one document kind about one or more residents of `town_code`.

    `subject_ids` are 宛名番号; with `whole_household` the first subject's whole household
    is meant (世帯全員). Tax certificates name `fiscal_year` (年度); the 納税証明書 names
    `tax_kind`; the 継続検査用 certificate names `vehicle_id`.
    """

    town_code: str
    document: DocumentKind
    subject_ids: tuple[str, ...]
    requester: RequesterKind
    applicant: Applicant
    identity: Identity
    channel: Channel = Channel.COUNTER
    items: frozenset[Item] = frozenset()
    whole_household: bool = False
    copies: int = 1
    fiscal_year: int | None = None
    tax_kind: TaxKind | None = None
    vehicle_id: str = ""
    power_of_attorney: PowerOfAttorney | None = None
    legal_representation: LegalRepresentation | None = None
    third_party: ThirdPartyPurpose | None = None
    professional: ProfessionalRequest | None = None
    official: OfficialUse | None = None
