"""A tiny hand-built town for the issuance tests, and the requests each requester kind
brings to the counter. Imported by the other test_issuance_* modules (tests/shared is on
sys.path); the tests here only pin the fixture's facts the others rely on.

聖籠町 on 2026-07-01 10:00 JST:

    household H1 (大字諏訪山 1番地): A 山田太郎 世帯主 (taxed, NHI without マイナ保険証,
        one paid 軽自動車), B 妻, C 長男, D 長女, E 母 — five people, two sheets;
        F 二男 moved out on 2026-03-01 (a 除票 in the same household)
    household H2 (大字藤寄 2番地): G 佐藤花子, unrelated
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from shared.issuance.context import JST, IssuanceContext, Policy
from shared.issuance.data import TownData
from shared.issuance.intake import Intake, NoIntake
from shared.issuance.requests import (
    Applicant,
    DocumentKind,
    IdDocumentKind,
    Identity,
    IdentityMethod,
    Item,
    LegalBasis,
    LegalRepresentation,
    OfficialUse,
    PowerOfAttorney,
    Profession,
    ProfessionalRequest,
    Request,
    RequesterKind,
    ThirdPartyGround,
    ThirdPartyPurpose,
)
from shared.model import (
    FilingStatus,
    Household,
    IncomeKind,
    Installment,
    NhiMember,
    Removal,
    RemovalReason,
    Resident,
    SealRules,
    Sex,
    SupportBlock,
    TaxAssessment,
    TaxKind,
    Town,
    Vehicle,
)

TOWN_CODE = "15307"
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=JST)
FISCAL_YEAR = 2026

FEES = (
    ("juminhyo", 300),
    ("juminhyo_jotaku", 300),
    ("kisai_jiko", 300),
    ("fuhyo", 300),
    ("kazei", 300),
    ("hikazei", 300),
    ("nozei", 300),
    ("keijidosha_keizoku", 0),
    ("shikaku_kakunin", 0),
    ("shikaku_oshirase", 0),
    ("menjo", 0),
    ("zenjumin_ichiran", 0),
    ("inkan", 300),
    ("risai", 0),
)

TOWN = Town(
    code=TOWN_CODE,
    name="聖籠町",
    kana="セイロウマチ",
    prefecture="新潟県",
    county="北蒲原郡",
    officials=(),
    seal=SealRules(),
    fees=FEES,
    nhi_insurer_number="150307",
)

HONSEKI = "新潟県北蒲原郡聖籠町大字諏訪山1番地"


def _person(
    rid: str,
    household: str,
    name: str,
    kana: str,
    born: date,
    sex: Sex,
    relationship: str,
    removal: Removal | None = None,
) -> Resident:
    return Resident(
        id=rid,
        town_code=TOWN_CODE,
        household_id=household,
        name=name,
        kana=kana,
        kana_certified=True,
        birth_date=born,
        sex=sex,
        relationship=relationship,
        became_resident=born if born.year > 1990 else date(1990, 4, 1),
        address_set=date(1990, 4, 1) if born.year <= 1990 else born,
        notified=date(1990, 4, 2),
        previous_address="",
        juminhyo_code="12345678901",
        my_number="123456789012",
        honseki=HONSEKI,
        hittosha="山田　太郎",
        removal=removal,
    )


A = _person("A", "H1", "山田　太郎", "ヤマダ　タロウ", date(1980, 5, 1), Sex.MALE, "世帯主")
B = _person("B", "H1", "山田　花子", "ヤマダ　ハナコ", date(1982, 6, 2), Sex.FEMALE, "妻")
C = _person("C", "H1", "山田　一郎", "ヤマダ　イチロウ", date(2010, 1, 3), Sex.MALE, "長男")
D = _person("D", "H1", "山田　桜", "ヤマダ　サクラ", date(2012, 2, 4), Sex.FEMALE, "長女")
E = _person("E", "H1", "山田　トメ", "ヤマダ　トメ", date(1950, 3, 5), Sex.FEMALE, "母")
F = _person(
    "F",
    "H1",
    "山田　次郎",
    "ヤマダ　ジロウ",
    date(2004, 7, 6),
    Sex.MALE,
    "二男",
    Removal(RemovalReason.MOVED_OUT, date(2026, 3, 1), "東京都新宿区"),
)
G = _person("G", "H2", "佐藤　花子", "サトウ　ハナコ", date(1991, 8, 7), Sex.FEMALE, "世帯主")
RESIDENTS = (A, B, C, D, E, F, G)
HOUSEHOLDS = (
    Household("H1", TOWN_CODE, "諏訪山", "1番地", "9570192", "A"),
    Household("H2", TOWN_CODE, "藤寄", "2番地", "9570193", "G"),
)
ASSESSMENTS = (
    TaxAssessment(
        "A",
        TOWN_CODE,
        FISCAL_YEAR,
        FilingStatus.EMPLOYER_REPORTED,
        ((IncomeKind.SALARY, 3_500_000),),
        (("基礎控除", 430_000),),
        3,
        120_000,
        80_000,
        "新潟県北蒲原郡聖籠町大字諏訪山1番地",
    ),
)
VEHICLE = Vehicle("V1", TOWN_CODE, "A", "新潟 480 あ 12-34", "軽四輪乗用", "XX1-1", 10_800)
INSTALLMENTS = (
    Installment(
        "R1",
        TOWN_CODE,
        "A",
        TaxKind.RESIDENT,
        FISCAL_YEAR,
        1,
        date(2026, 6, 30),
        50_000,
        50_000,
        date(2026, 6, 25),
    ),
    Installment(
        "R2", TOWN_CODE, "A", TaxKind.RESIDENT, FISCAL_YEAR, 2, date(2026, 8, 31), 50_000, 0, None
    ),
    Installment(
        "L1",
        TOWN_CODE,
        "A",
        TaxKind.LIGHT_VEHICLE,
        FISCAL_YEAR,
        1,
        date(2026, 6, 1),
        10_800,
        10_800,
        date(2026, 5, 20),
        vehicle_id="V1",
    ),
)
NHI = (
    NhiMember(
        "A",
        TOWN_CODE,
        "001",
        "0000001",
        "01",
        date(2020, 4, 1),
        None,
        30,
        None,
        date(2025, 8, 1),
        date(2026, 7, 31),
        "",
        False,
    ),
)

ADVERSARY = Applicant("田中　悪夫", "タナカ　アクオ", date(1975, 1, 1), "新潟市中央区1-1")


def person_block(
    resident_id: str,
    start: date = date(2026, 4, 1),
    *,
    block_id: str = "",
    end: date | None = None,
) -> SupportBlock:
    return SupportBlock(
        id=block_id or f"BLK-{resident_id}",
        town_code=TOWN_CODE,
        protected_ids=(resident_id,),
        household_id="",
        adversary_name=ADVERSARY.name,
        adversary_kana=ADVERSARY.kana,
        adversary_birth_date=ADVERSARY.birth_date,
        start=start,
        end=end or start + timedelta(days=364),
    )


def household_block(household_id: str = "H1") -> SupportBlock:
    members = tuple(r.id for r in RESIDENTS if r.household_id == household_id)
    return SupportBlock(
        id=f"BLK-{household_id}",
        town_code=TOWN_CODE,
        protected_ids=members,
        household_id=household_id,
        start=date(2026, 4, 1),
        end=date(2027, 3, 31),
        adversary_name=ADVERSARY.name,
        adversary_kana=ADVERSARY.kana,
        adversary_birth_date=ADVERSARY.birth_date,
    )


def town_data(blocks: tuple[SupportBlock, ...] = (), *, synthetic: bool = False) -> TownData:
    return TownData.build(
        TOWN,
        RESIDENTS,
        HOUSEHOLDS,
        blocks,
        ASSESSMENTS,
        INSTALLMENTS,
        (VEHICLE,),
        NHI,
        synthetic=synthetic,
    )


def context(
    data: TownData | None = None,
    *,
    now: datetime = NOW,
    blocks_age: timedelta = timedelta(hours=1),
    registry_age: timedelta = timedelta(minutes=10),
    disaster_mode: bool = False,
    disaster_fee_exemption: bool = False,
    drill: bool = False,
    intake: Intake | None = None,
    policy: Policy | None = None,
) -> IssuanceContext:
    return IssuanceContext(
        data=data if data is not None else town_data(),
        now=now,
        blocks_checked_at=now - blocks_age,
        registry_checked_at=now - registry_age,
        policy=policy or Policy(),
        disaster_mode=disaster_mode,
        disaster_fee_exemption=disaster_fee_exemption,
        drill=drill,
        intake=intake if intake is not None else NoIntake(),
    )


PHOTO = Identity(IdentityMethod.PHOTO_ID, (IdDocumentKind.DRIVERS_LICENSE,))
AGENT = Applicant("鈴木　次郎", "スズキ　ジロウ", date(1970, 9, 9), "新潟市北区2-2", "025-000-0000")


def subject_for(document: DocumentKind) -> Resident:
    return F if document is DocumentKind.JOHYO else A


def applicant_for(requester: RequesterKind, subject: Resident) -> Applicant:
    """The normal applicant of each requester kind, about `subject`."""
    if requester is RequesterKind.SELF:
        return Applicant(subject.name, subject.kana, subject.birth_date, resident_id=subject.id)
    if requester is RequesterKind.HOUSEHOLD:
        return Applicant(B.name, B.kana, B.birth_date, resident_id=B.id)
    if requester is RequesterKind.LEGAL_REPRESENTATIVE:
        return Applicant("後見　守", "コウケン　マモル", date(1960, 1, 1), "新潟市東区3-3")
    if requester is RequesterKind.PROXY:
        return AGENT
    if requester is RequesterKind.THIRD_PARTY:
        return Applicant("債権　者", "サイケン　シャ", date(1965, 2, 2), "新潟市西区4-4")
    if requester is RequesterKind.PROFESSIONAL:
        return Applicant("司法　書士", "シホウ　ショシ", date(1972, 3, 3), "新潟市中央区5-5")
    return Applicant("新発田　職員", "シバタ　ショクイン", None, "新発田市役所")


def request_for(
    requester: RequesterKind,
    document: DocumentKind,
    items: frozenset[Item] = frozenset(),
    *,
    applicant: Applicant | None = None,
    **changes: object,
) -> Request:
    """A well-formed counter request with a photo ID and every paper the kind needs."""
    subject = subject_for(document)
    papers: dict[str, object] = {}
    if requester is RequesterKind.PROXY:
        papers["power_of_attorney"] = PowerOfAttorney(
            signed_by_person=True,
            dated=date(2026, 6, 20),
            agent_name=AGENT.name,
            scope=frozenset(DocumentKind),
            items=frozenset(Item),
        )
    elif requester is RequesterKind.LEGAL_REPRESENTATIVE:
        papers["legal_representation"] = LegalRepresentation(LegalBasis.GUARDIAN, "登記事項証明書")
    elif requester is RequesterKind.THIRD_PARTY:
        papers["third_party"] = ThirdPartyPurpose(
            ThirdPartyGround.OWN_RIGHTS, "貸金返還請求訴訟の提起", "新潟地方裁判所"
        )
    elif requester is RequesterKind.PROFESSIONAL:
        papers["professional"] = ProfessionalRequest(
            Profession.JUDICIAL_SCRIVENER,
            "新潟第123号",
            "A-000123",
            "不動産登記（相続）",
            "新潟地方法務局",
        )
    elif requester is RequesterKind.OFFICIAL:
        papers["official"] = OfficialUse(
            "新発田市 税務課", "主査 新発田職員", "地方税法第20条の11", "滞納処分の調査"
        )
    extra: dict[str, object] = {}
    if document in (DocumentKind.KAZEI, DocumentKind.HIKAZEI, DocumentKind.NOZEI):
        extra["fiscal_year"] = FISCAL_YEAR
    if document is DocumentKind.NOZEI:
        extra["tax_kind"] = TaxKind.RESIDENT
    if document is DocumentKind.KEIJIDOSHA_KEIZOKU:
        extra["vehicle_id"] = VEHICLE.id
    fields: dict[str, object] = dict(
        town_code=TOWN_CODE,
        document=document,
        subject_ids=(subject.id,),
        requester=requester,
        applicant=applicant or applicant_for(requester, subject),
        identity=PHOTO,
        items=items,
    )
    fields |= papers | extra | changes
    return Request(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- tests


def test_fixture_household_has_five_living_members_and_a_johyo() -> None:
    data = town_data()
    assert [p.id for p in data.members_of("H1")] == ["A", "B", "C", "D", "E"]
    assert data.members_of("H1", living_only=False)[-1].id == "F"


def test_fixture_requests_are_well_formed_for_every_requester() -> None:
    for requester in RequesterKind:
        request = request_for(requester, DocumentKind.JUMINHYO)
        assert request.requester is requester
        assert request.identity == PHOTO
