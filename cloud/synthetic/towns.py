"""The three towns of the federation: fixed facts, synthetic officials, fees and districts.

Real: codes, names, counties, districts and the town halls' addresses (public). Synthetic:
every person's name, the NHI 保険者番号 (prefecture 15, three town digits and a Luhn-style
検証番号), phone numbers (exchange 00, which is not in service, so nothing printed from
the demo can reach a real line).

Fee keys (`Town.fees`), short stable ASCII strings, with the document each prices:

    juminhyo            住民票の写し
    juminhyo_jotaku     除票の写し
    kisai_jiko          住民票記載事項証明書
    fuhyo               戸籍の附票の写し
    kazei               課税（所得）証明書
    hikazei             非課税証明書
    nozei               納税証明書
    keijidosha_keizoku  軽自動車税納税証明書（継続検査用）
    shikaku_kakunin     国民健康保険資格確認書
    shikaku_oshirase    資格情報のお知らせ
    menjo               一部負担金免除証明書
    zenjumin_ichiran    全住民一覧（安否確認用）
    inkan               印鑑登録証明書 (intake only)
    risai               罹災証明書 (intake only)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from shared.districts import districts_of
from shared.model import District, Official, SealRules, Town

from .names import NamePools, full_name

FEE_KINDS: dict[str, str] = {
    "juminhyo": "住民票の写し",
    "juminhyo_jotaku": "除票の写し",
    "kisai_jiko": "住民票記載事項証明書",
    "fuhyo": "戸籍の附票の写し",
    "kazei": "課税（所得）証明書",
    "hikazei": "非課税証明書",
    "nozei": "納税証明書",
    "keijidosha_keizoku": "軽自動車税納税証明書（継続検査用）",
    "shikaku_kakunin": "国民健康保険資格確認書",
    "shikaku_oshirase": "資格情報のお知らせ",
    "menjo": "一部負担金免除証明書",
    "zenjumin_ichiran": "全住民一覧（安否確認用）",
    "inkan": "印鑑登録証明書",
    "risai": "罹災証明書",
}

_BASE_FEES: dict[str, int] = {
    "juminhyo": 300,
    "juminhyo_jotaku": 300,
    "kisai_jiko": 300,
    "fuhyo": 300,
    "kazei": 300,
    "hikazei": 300,
    "nozei": 300,
    "keijidosha_keizoku": 0,
    "shikaku_kakunin": 0,
    "shikaku_oshirase": 0,
    "menjo": 0,
    "zenjumin_ichiran": 0,
    "inkan": 300,
    "risai": 0,
}


@dataclass(frozen=True, slots=True)
class TownSpec:
    """What differs between the towns, in one row each."""

    code: str
    name: str
    kana: str
    county: str
    is_village: bool
    residents: int  # living residents the generator aims at
    login_prefix: str  # clerks' login ids: seiro.tanaka
    insurer_digits: str  # three digits after the prefecture in the 保険者番号
    area_code: str  # phone
    office_district: str
    office_banchi: str
    office_postal: str  # the town hall's own postal code (Japan Post 個別番号)
    seal: SealRules
    fee_overrides: tuple[tuple[str, int], ...] = ()
    # household mix: weights by kind (see population.HOUSEHOLD_KINDS)
    household_mix: tuple[tuple[str, float], ...] = ()
    farming: float = 0.1  # share of working-age people with farm income
    fishing: float = 0.0  # share of self-employed in fishing (営業等)
    apartments: tuple[str, ...] = ()  # apartment buildings (name) for single workers

    @property
    def mayor_title(self) -> str:
        return "村長" if self.is_village else "町長"

    @property
    def deputy_title(self) -> str:
        return "副村長" if self.is_village else "副町長"


PREFECTURE = "新潟県"

SPECS: tuple[TownSpec, ...] = (
    TownSpec(
        code="15307",
        name="聖籠町",
        kana="セイロウマチ",
        county="北蒲原郡",
        is_village=False,
        residents=14000,
        login_prefix="seiro",
        insurer_digits="307",
        area_code="0254",
        office_district="諏訪山",
        office_banchi="1635番地4",
        office_postal="9570192",
        seal=SealRules(
            seal_size_mm=21.0, colour_notice="この印は黒色です", seal_text="聖籠町長之印"
        ),
        household_mix=(
            ("single_elderly", 10),
            ("elderly_couple", 11),
            ("single_adult", 13),
            ("couple", 9),
            ("young_family", 23),
            ("single_parent", 4),
            ("elder_with_child", 6),
            ("three_gen_old", 8),
            ("three_gen_mid", 10),
            ("foreign_single", 2.6),
            ("foreign_family", 0.5),
            ("mixed_marriage", 0.8),
            ("other", 1.4),
        ),
        farming=0.12,
        fishing=0.0,
        apartments=("東港ハイツ", "コーポ聖籠", "レオパレス蓮野", "諏訪山グリーンハイツ"),
    ),
    TownSpec(
        code="15405",
        name="出雲崎町",
        kana="イズモザキマチ",
        county="三島郡",
        is_village=False,
        residents=4800,
        login_prefix="izumozaki",
        insurer_digits="405",
        area_code="0258",
        office_district="川西",
        office_banchi="140番地",
        office_postal="9494392",
        seal=SealRules(
            seal_size_mm=24.0,
            colour_notice="この証明書の公印は黒色です",
            seal_text="出雲崎町長之印",
        ),
        household_mix=(
            ("single_elderly", 25),
            ("elderly_couple", 22),
            ("single_adult", 9),
            ("couple", 8),
            ("young_family", 5),
            ("single_parent", 2),
            ("elder_with_child", 12),
            ("three_gen_old", 7),
            ("three_gen_mid", 8),
            ("foreign_single", 1.5),
            ("foreign_family", 0.2),
            ("mixed_marriage", 0.8),
            ("other", 2.0),
        ),
        farming=0.08,
        fishing=0.35,
        apartments=("尼瀬コーポ", "川西ハイツ"),
    ),
    TownSpec(
        code="15581",
        name="関川村",
        kana="セキカワムラ",
        county="岩船郡",
        is_village=True,
        residents=6200,
        login_prefix="sekikawa",
        insurer_digits="581",
        area_code="0254",
        office_district="下関",
        office_banchi="912番地",
        office_postal="9593292",
        seal=SealRules(
            seal_size_mm=21.0, colour_notice="この印は黒色です", seal_text="関川村長之印"
        ),
        fee_overrides=(("inkan", 200),),
        household_mix=(
            ("single_elderly", 19),
            ("elderly_couple", 20),
            ("single_adult", 9),
            ("couple", 8),
            ("young_family", 9),
            ("single_parent", 2),
            ("elder_with_child", 12),
            ("three_gen_old", 9),
            ("three_gen_mid", 10),
            ("foreign_single", 1.7),
            ("foreign_family", 0.2),
            ("mixed_marriage", 1.0),
            ("other", 1.8),
        ),
        farming=0.2,
        fishing=0.0,
        apartments=("下関ハイツ", "村営上関住宅"),
    ),
)
SPEC_BY_CODE: dict[str, TownSpec] = {s.code: s for s in SPECS}


def luhn_check_digit(digits: str) -> int:
    """The 検証番号 of a 保険者番号: digits doubled alternately from the right."""
    total = 0
    for n, char in enumerate(reversed(digits)):
        value = int(char) * (2 if n % 2 == 0 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


def insurer_number(spec: TownSpec) -> str:
    body = "15" + spec.insurer_digits
    return body + str(luhn_check_digit(body))


def residential_districts(code: str) -> list[District]:
    """One row per 大字 with its ordinary postal code (not the offices' 個別番号 rows)."""
    seen: dict[str, District] = {}
    for district in districts_of(code):
        if district.kana and district.name not in seen:
            seen[district.name] = district
    return list(seen.values())


def phone(rng: random.Random, area_code: str) -> str:
    """A landline in the town's area code with the unused exchange 00."""
    return f"{area_code}-00-{rng.randrange(10000):04d}"


def _officials(
    spec: TownSpec, rng: random.Random, pools: NamePools, as_of: date
) -> tuple[tuple[Official, ...], dict[str, tuple[str, str, str]]]:
    """Mayors and 職務代理者 around `as_of`, and (name, kana, romanised surname) of the
    mayor, the deputy and the 総務課長 by role.

    The timeline has the cases a naive "current mayor" lookup gets wrong: a vacancy between
    mayors covered by the deputy, a past and a future 職務代理 while the mayor is absent,
    and a period when the deputy post was empty and the 総務課長 acted.
    """

    def person(male: bool, born: int) -> tuple[str, str, str]:
        surname = pools.surname(rng)
        name, kana = full_name(surname, pools.given(rng, male, born))
        return name, kana, surname[2]

    people = {
        "previous": person(True, 1948),
        "mayor": person(rng.random() < 0.85, 1958),
        "deputy": person(True, 1962),
        "soumu": person(rng.random() < 0.7, 1968),
    }
    names = {role: triple[0] for role, triple in people.items()}
    resigned = as_of - timedelta(days=365 * 4 + rng.randrange(60, 300))
    elected = resigned + timedelta(days=rng.randrange(40, 55))
    absence = as_of - timedelta(days=rng.randrange(300, 500))
    vacancy = as_of - timedelta(days=rng.randrange(600, 900))
    planned = as_of + timedelta(days=rng.randrange(14, 40))
    mayor, deputy = spec.mayor_title, spec.deputy_title
    officials = (
        Official(names["previous"], mayor, resigned - timedelta(days=365 * 8 + 30), resigned),
        Official(
            names["deputy"],
            deputy,
            resigned + timedelta(days=1),
            elected - timedelta(days=1),
            acting_for_mayor=True,
        ),
        Official(names["mayor"], mayor, elected),
        Official(
            names["soumu"], "総務課長", vacancy, vacancy + timedelta(days=6), acting_for_mayor=True
        ),
        Official(
            names["deputy"], deputy, absence, absence + timedelta(days=9), acting_for_mayor=True
        ),
        Official(
            names["deputy"], deputy, planned, planned + timedelta(days=4), acting_for_mayor=True
        ),
    )
    return officials, people


def build_town(
    spec: TownSpec, rng: random.Random, pools: NamePools, as_of: date
) -> tuple[Town, dict[str, tuple[str, str, str]]]:
    """The `Town` record and its officials by role (the clerk directory reuses them)."""
    officials, people = _officials(spec, rng, pools, as_of)
    fees = dict(_BASE_FEES)
    fees.update(spec.fee_overrides)
    office = f"{PREFECTURE}{spec.county}{spec.name}大字{spec.office_district}{spec.office_banchi}"
    town = Town(
        code=spec.code,
        name=spec.name,
        kana=spec.kana,
        prefecture=PREFECTURE,
        county=spec.county,
        officials=officials,
        seal=spec.seal,
        fees=tuple(fees.items()),
        nhi_insurer_number=insurer_number(spec),
        office_address=office,
        office_phone=f"{spec.area_code}-00-{1000 + rng.randrange(9000)}",
    )
    return town, people
