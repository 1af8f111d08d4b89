"""The domain model: towns, households, residents, 支援措置, tax, insurance, welfare, clerks.

Plain frozen dataclasses, no I/O. Every other part of Renkei (the core-system CSV layout,
the Loro documents, the search index, the certificates) converts to and from these types,
so they carry every item the law and BRIEF §4 require — including the ones a certificate
omits by default — and nothing that Renkei must never hold (no identity-document numbers).

Names are Unicode strings that may contain Ideographic Variation Sequences from the
Moji_Joho collection (e.g. 辻 U+8FBB U+E0102), characters outside the BMP (𠮷 U+20BB7)
and Private Use Area 外字; they are stored exactly and folded only for search.

Dates are `datetime.date`; money is whole yen (`int`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date

# ---------------------------------------------------------------------------- enums


class Sex(enum.StrEnum):
    MALE = "男"
    FEMALE = "女"


class Role(enum.StrEnum):
    """A clerk's roles, per town; enforced server-side on every request."""

    CLERK = "clerk"
    SUPERVISOR = "supervisor"
    REPRESENTATIVE = "representative"
    ADMIN = "admin"


class RemovalReason(enum.StrEnum):
    """Why a resident's record became a 除票."""

    MOVED_OUT = "転出"
    DIED = "死亡"
    STRUCK_OFF = "職権消除"


class ResidentKind(enum.StrEnum):
    JAPANESE = "日本人"
    FOREIGN = "外国人住民"


class FilingStatus(enum.StrEnum):
    """住民税 filing state for a fiscal year; a non-filer who is nobody's dependant
    gets no 課税証明書 until they file."""

    FILED = "申告済"
    EMPLOYER_REPORTED = "給与支払報告"
    PENSION_REPORTED = "公的年金等支払報告"
    DEPENDANT = "被扶養"
    NOT_FILED = "未申告"


class IncomeKind(enum.StrEnum):
    SALARY = "給与"
    PENSION = "公的年金等"
    BUSINESS = "営業等"
    AGRICULTURE = "農業"
    REAL_ESTATE = "不動産"
    MISC = "雑"
    OTHER = "その他"


class TaxKind(enum.StrEnum):
    RESIDENT = "個人住民税"
    PROPERTY = "固定資産税"
    LIGHT_VEHICLE = "軽自動車税"
    NHI = "国民健康保険税"


# ---------------------------------------------------------------------------- towns


@dataclass(frozen=True, slots=True)
class Official:
    """A mayor or a registered 職務代理者 for a period (end None = still in office)."""

    name: str
    title: str  # e.g. 町長, 副町長, 村長
    start: date
    end: date | None = None
    acting_for_mayor: bool = False  # True for a 職務代理者 appointment


@dataclass(frozen=True, slots=True)
class SealRules:
    """A town's 公印規程 settings: what the certificate prints around the seal."""

    seal_size_mm: float = 21.0
    colour_notice: str = "この印は黒色です"
    seal_text: str = ""  # e.g. 聖籠町長之印


@dataclass(frozen=True, slots=True)
class Town:
    code: str  # 全国地方公共団体コード without check digit, e.g. "15307"
    name: str  # 聖籠町
    kana: str  # セイロウマチ
    prefecture: str  # 新潟県
    county: str  # 郡, e.g. 北蒲原郡
    officials: tuple[Official, ...]
    seal: SealRules
    fees: tuple[tuple[str, int], ...]  # 手数料条例: (document kind, yen)
    nhi_insurer_number: str  # 保険者番号, 6 digits for a municipal NHI
    office_address: str = ""
    office_phone: str = ""

    def fee_for(self, kind: str) -> int:
        return dict(self.fees)[kind]

    @property
    def certifier_prefix(self) -> str:
        """Prefecture and county as the 認証者 title needs them: 新潟県北蒲原郡聖籠町."""
        return f"{self.prefecture}{self.county}{self.name}"


@dataclass(frozen=True, slots=True)
class District:
    """A 大字 of a town, with its kana and postal code (Japan Post data)."""

    town_code: str
    name: str
    kana: str
    postal_code: str


# ---------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class Household:
    id: str  # 世帯番号
    town_code: str
    district: str  # 大字; an attribute, so a move between districts is one edit
    address: str  # 番地 and the rest after the district, e.g. 1234番地5
    postal_code: str
    head_id: str  # the 世帯主's resident id


@dataclass(frozen=True, slots=True)
class ForeignResidentItems:
    """Items of a foreign resident's 住民票 (住基法 §30-45)."""

    nationality: str  # 国籍・地域
    status: str  # 30条45規定区分, e.g. 中長期在留者
    residence_status: str  # 在留資格
    period_of_stay: str  # 在留期間, e.g. 3年
    expiry: date | None  # 在留期間の満了の日, printed in 西暦
    alias: str = ""  # 通称
    alias_kana: str = ""


@dataclass(frozen=True, slots=True)
class Removal:
    reason: RemovalReason
    date: date
    destination: str = ""  # 転出先 for 転出


@dataclass(frozen=True, slots=True)
class Resident:
    id: str  # 宛名番号: the town's internal, stable person id
    town_code: str
    household_id: str
    name: str  # 氏名, exact, may hold IVS / non-BMP / PUA characters
    kana: str  # 氏名フリガナ (full-width katakana)
    kana_certified: bool  # フリガナ is a legal item since 2025-05-26; blank/**** until certified
    birth_date: date
    sex: Sex
    relationship: str  # 続柄 to the 世帯主: 世帯主, 妻, 夫, 子, 長男, 母 …
    became_resident: date  # 住民となった年月日
    address_set: date  # 住所を定めた年月日
    notified: date  # 届出年月日
    previous_address: str  # 転入前住所 ("" if born here)
    juminhyo_code: str  # 住民票コード, 11 digits
    my_number: str  # 個人番号, 12 digits with check digit
    kind: ResidentKind = ResidentKind.JAPANESE
    honseki: str = ""  # 本籍 (Japanese residents)
    hittosha: str = ""  # 筆頭者
    former_surname: str = ""  # 旧氏
    former_surname_kana: str = ""
    foreign: ForeignResidentItems | None = None
    removal: Removal | None = None  # set for a 除票

    @property
    def is_removed(self) -> bool:
        return self.removal is not None


@dataclass(frozen=True, slots=True)
class SupportBlock:
    """A 支援措置 (DV / stalking / child abuse protection) on a person or a household."""

    id: str
    town_code: str
    protected_ids: tuple[str, ...]  # resident ids; a household block lists every member
    household_id: str  # "" for a person-only block
    adversary_name: str  # 相手方
    adversary_kana: str
    adversary_birth_date: date | None
    start: date
    end: date  # measures run a year and are renewed

    def active_on(self, day: date) -> bool:
        return self.start <= day <= self.end


# ---------------------------------------------------------------------------- tax


@dataclass(frozen=True, slots=True)
class TaxAssessment:
    """住民税 for one person and one fiscal year (year N covers income of year N−1)."""

    resident_id: str
    town_code: str
    fiscal_year: int
    filing: FilingStatus
    income: tuple[tuple[IncomeKind, int], ...]  # 所得 by kind
    deductions: tuple[tuple[str, int], ...]  # 所得控除 by name
    dependants: int  # 扶養人数
    municipal_tax: int  # 市町村民税 (所得割 + 均等割)
    prefectural_tax: int  # 県民税
    address_on_jan1: str  # decides the issuing town

    @property
    def total_income(self) -> int:
        return sum(amount for _, amount in self.income)

    @property
    def taxable(self) -> bool:
        return self.municipal_tax + self.prefectural_tax > 0


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A 軽自動車 on which the owner pays 軽自動車税 (種別割)."""

    id: str
    town_code: str
    owner_id: str
    plate: str  # 標識番号, e.g. 新潟 480 あ 12-34
    vehicle_kind: str  # 軽四輪乗用 …
    chassis_number: str  # 車台番号
    annual_tax: int


@dataclass(frozen=True, slots=True)
class Installment:
    """One 期 of a tax bill with its payment state."""

    id: str
    town_code: str
    taxpayer_id: str
    tax: TaxKind
    fiscal_year: int
    period: int  # 期
    due: date
    amount: int
    paid: int
    paid_on: date | None
    vehicle_id: str = ""  # for 軽自動車税

    @property
    def outstanding(self) -> int:
        return self.amount - self.paid


# ---------------------------------------------------------------------------- insurance


@dataclass(frozen=True, slots=True)
class NhiMember:
    """A 国民健康保険 被保険者; the 資格確認書 prints these items."""

    resident_id: str
    town_code: str
    symbol: str  # 記号
    number: str  # 番号
    branch: str  # 枝番, 2 digits
    acquired: date  # 資格取得年月日
    lost: date | None  # 資格喪失年月日
    copay_percent: int  # 負担割合 (30 / 20 / 10)
    copay_effective: date | None  # 発効期日, for 70+
    valid_from: date
    valid_until: date
    limit_category: str  # 限度区分 ("" when not requested)
    has_my_number_insurance: bool  # マイナ保険証 → 資格情報のお知らせ instead of 資格確認書


# ---------------------------------------------------------------------------- welfare


@dataclass(frozen=True, slots=True)
class SupportNeed:
    """An entry of the 避難行動要支援者名簿 (from welfare data, not the registry)."""

    resident_id: str
    town_code: str
    reason: str  # 要介護3, 身体障害者手帳1級 …
    contact: str  # phone of the person or a family member
    consented: bool  # 平常時の名簿提供に同意


# ---------------------------------------------------------------------------- clerks


@dataclass(frozen=True, slots=True)
class Clerk:
    town_code: str
    login_id: str
    name: str
    kana: str
    roles: tuple[Role, ...]
    on_roster: bool  # 緊急時名簿: only these clerks' wrapped keys reach partner boxes
    deputy_rank: int = 0  # >0: on the town's deputy list for activations, in order


# ---------------------------------------------------------------------------- 外字


class GaijiTarget(enum.StrEnum):
    """Where a town's legacy 外字 (a Private Use Area code in its old system) maps to."""

    UNICODE = "Unicode"  # a standard character, with a Moji_Joho IVS where needed
    GYOSEI = "行政事務標準文字"  # MJ+ characters, in the Private Use planes, own font
    TOWN_FONT = "町村外字フォント"  # kept as the PUA code, drawn from the town's own font


@dataclass(frozen=True, slots=True)
class GaijiMapping:
    """One entry of a town's 外字 table: the legacy PUA code and what it becomes."""

    town_code: str
    legacy: str  # one PUA character as the core system exports it
    target: GaijiTarget
    replacement: str  # the character sequence stored in Renkei (== legacy for TOWN_FONT)
    description: str  # 字形の説明, e.g. 「辻（一点しんにょう）」


# ---------------------------------------------------------------------------- export


@dataclass(slots=True)
class TownExport:
    """Everything the core system exports for one town (see docs/core-export.md)."""

    town: Town
    households: list[Household] = field(default_factory=list)
    residents: list[Resident] = field(default_factory=list)
    support_blocks: list[SupportBlock] = field(default_factory=list)
    tax_assessments: list[TaxAssessment] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)
    installments: list[Installment] = field(default_factory=list)
    nhi_members: list[NhiMember] = field(default_factory=list)
    support_needs: list[SupportNeed] = field(default_factory=list)
    clerks: list[Clerk] = field(default_factory=list)
    gaiji: list[GaijiMapping] = field(default_factory=list)
    exported_at: str = ""  # ISO 8601 time the core system wrote the export


# ---------------------------------------------------------------------------- checks


def _mod11_check_digit(digits: str, length: int, label: str) -> int:
    """Modulus-11 check digit shared by 個人番号 (番号法施行令 §8) and 住民票コード: weights
    2..7 repeating from the rightmost digit; a remainder of 0 or 1 gives 0."""
    if len(digits) != length or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{label}の先頭{length}桁は半角数字で指定してください")
    total = 0
    for n, digit in enumerate(reversed(digits), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(digit) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def my_number_check_digit(first11: str) -> int:
    return _mod11_check_digit(first11, 11, "個人番号")


def juminhyo_code_check_digit(first10: str) -> int:
    return _mod11_check_digit(first10, 10, "住民票コード")


def _has_valid_check_digit(value: str, length: int) -> bool:
    if len(value) != length or not value.isascii() or not value.isdigit():
        return False
    return _mod11_check_digit(value[:-1], length - 1, "") == int(value[-1])


def is_valid_my_number(value: str) -> bool:
    return _has_valid_check_digit(value, 12)


def is_valid_juminhyo_code(value: str) -> bool:
    return _has_valid_check_digit(value, 11)
