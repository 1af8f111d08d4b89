"""Households and residents of one town: a rural age pyramid built household by household.

Households are drawn by kind (single elderly, elderly couple, young family, three
generations with the old or the middle generation as 世帯主, foreign trainees …) with
town-specific weights, so the age pyramid and the average household size follow from
who lives together rather than being sampled person by person. Ages within a household
are drawn from each other (a 孫 is born to the 子の妻, a 母 is 22–38 years older than the
世帯主), so 続柄 and birth dates never contradict.

What a register holds besides the living: 除票 (a dead husband whose widow became 世帯主,
grown children who moved to the city, whole households that left, a trainee struck off),
households at the same address (elderly parents registered as their own household),
foreign residents (在留資格, 在留期間, some with 通称), and the occasional register-only
character in a surname (IVS, 𠮷, 髙/﨑, the town's legacy 外字).

Residents of a household are listed head first, in the order a 世帯連記式 copy prints
them; 除票 members come after the living ones.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from shared.model import (
    District,
    ForeignResidentItems,
    Household,
    Removal,
    RemovalReason,
    Resident,
    ResidentKind,
    Sex,
)

from .names import (
    COMPAT_SURNAMES,
    IVS_SURNAMES,
    KICHI_SURNAMES,
    SPACE,
    TOWN_GAIJI,
    NamePools,
    NameTriple,
    foreign_name,
    full_name,
)
from .numbers import NumberAllocator, years_before
from .towns import PREFECTURE, TownSpec

HOUSEHOLD_KINDS = (
    "single_elderly",
    "elderly_couple",
    "single_adult",
    "couple",
    "young_family",
    "single_parent",
    "elder_with_child",
    "three_gen_old",
    "three_gen_mid",
    "foreign_single",
    "foreign_family",
    "mixed_marriage",
    "other",
)


class Occupation(enum.Enum):
    """What a person lives on; tax and insurance follow from it. Not exported."""

    CHILD = "child"
    STUDENT = "student"
    EMPLOYEE = "employee"
    FARMER = "farmer"
    SELF_EMPLOYED = "self_employed"
    PENSIONER = "pensioner"
    HOMEMAKER = "homemaker"
    UNEMPLOYED = "unemployed"


@dataclass(slots=True)
class Person:
    """A resident plus the generation-time facts tax, NHI and welfare draw on."""

    resident: Resident
    occupation: Occupation
    side_farm: bool = False  # 兼業農家: a paddy besides the main income
    fisher: bool = False


@dataclass(slots=True)
class HouseholdDraft:
    household: Household
    kind: str
    members: list[Person]
    owns_home: bool
    full_address: str  # 新潟県…大字…番地, as tax records and 転入前住所 write it


# Where people come from and go to (転入前住所 / 転出先), with a few 町名 each.
_ELSEWHERE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("新潟県新潟市北区", ("葛塚", "松浜町", "木崎")),
    ("新潟県新潟市東区", ("大形本町", "石山", "竹尾")),
    ("新潟県新潟市中央区", ("東大通", "古町通", "女池")),
    ("新潟県新発田市", ("中央町", "諏訪町", "豊町")),
    ("新潟県胎内市", ("新和町", "西本町")),
    ("新潟県村上市", ("田端町", "岩船", "坂町")),
    ("新潟県長岡市", ("大手通", "東坂之上町", "宮内")),
    ("新潟県柏崎市", ("東本町", "駅前", "西本町")),
    ("新潟県燕市", ("吉田", "分水")),
    ("東京都江東区", ("豊洲", "大島")),
    ("東京都練馬区", ("光が丘", "石神井町")),
    ("神奈川県横浜市港北区", ("日吉", "綱島西")),
    ("埼玉県さいたま市大宮区", ("桜木町", "宮町")),
    ("山形県西置賜郡小国町", ("大字小国町", "大字岩井沢")),
)

_RESIDENCE: dict[str, tuple[str, tuple[int, ...]]] = {
    # 在留資格: (在留期間 labels, years)
    "技能実習": ("年", (1, 2)),
    "特定技能": ("年", (1,)),
    "技術・人文知識・国際業務": ("年", (1, 3, 5)),
    "日本人の配偶者等": ("年", (1, 3, 5)),
    "家族滞在": ("年", (1, 3)),
    "定住者": ("年", (3, 5)),
}
_FOREIGN_SINGLE_NATIONS = (
    ("ベトナム", 45.0),
    ("インドネシア", 18.0),
    ("フィリピン", 15.0),
    ("中国", 17.0),
    ("韓国", 5.0),
)


def _weighted(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    total = sum(w for _, w in table)
    x = rng.random() * total
    for value, weight in table:
        x -= weight
        if x < 0:
            return value
    return table[-1][0]


@dataclass(slots=True)
class _Member:
    """A member before ids and dates of residence are fixed."""

    rel: str
    male: bool
    birth: date
    occupation: Occupation
    surname: NameTriple | None = None  # None: the household's
    given: NameTriple | None = None
    foreign: ForeignResidentItems | None = None
    foreign_name: tuple[str, str] | None = None
    joined: date | None = None  # None: the household's
    previous_address: str | None = None
    removal: Removal | None = None
    former_surname: tuple[str, str] = ("", "")
    side_farm: bool = False
    hittosha: str = ""
    alias_in_household_surname: bool = False


@dataclass(slots=True)
class _Plan:
    kind: str
    members: list[_Member] = field(default_factory=list)
    native: bool = True
    moved_in: date | None = None
    previous_address: str = ""
    owns_home: bool = True
    apartment: bool = False
    same_address_as: HouseholdDraft | None = None


class TownPopulation:
    """Builds one town's households; `build()` returns them in 世帯番号 order."""

    def __init__(
        self,
        spec: TownSpec,
        districts: list[District],
        target: int,
        as_of: date,
        rng: random.Random,
        pools: NamePools,
        numbers: NumberAllocator,
    ) -> None:
        self.spec = spec
        self.as_of = as_of
        self.rng = rng
        self.pools = pools
        self.numbers = numbers
        self.target = target
        self.districts = districts
        self._district_cum: list[float] = []
        total = 0.0
        for _ in districts:
            total += rng.lognormvariate(0.0, 0.8)
            self._district_cum.append(total)
        households_estimate = target / 2.4
        self._banchi_max = max(3000, int(households_estimate / len(districts) * 4))
        self._used_addresses: set[tuple[str, str]] = set()
        self._apartments = [
            (
                name,
                self._pick_district(),
                f"{rng.randrange(1, self._banchi_max)}番地{rng.randrange(1, 30)}",
            )
            for name in spec.apartments
        ]
        self._apartment_rooms: dict[str, int] = {}
        self._resident_serial = 0
        self._household_serial = 0
        self._gaiji = TOWN_GAIJI.get(spec.code, ())
        # Rare characters every town must show at least once (each legacy 外字, a 𠮷, a
        # 髙/﨑) go to households at random positions among the first quarter.
        rare = [g.surname for g in self._gaiji]
        rare += [rng.choice(KICHI_SURNAMES), rng.choice(COMPAT_SURNAMES)]
        slots = rng.sample(range(1, max(len(rare) + 1, target // 10)), len(rare))
        self._forced_surnames = dict(zip(slots, rare, strict=True))
        self._town_prefix = f"{PREFECTURE}{spec.county}{spec.name}"
        mix = dict(spec.household_mix)
        self._kinds = tuple((k, mix.get(k, 0.0)) for k in HOUSEHOLD_KINDS)

    # ------------------------------------------------------------------ helpers

    def _pick_district(self) -> District:
        x = self.rng.random() * self._district_cum[-1]
        for district, cum in zip(self.districts, self._district_cum, strict=True):
            if x < cum:
                return district
        return self.districts[-1]

    def _birth(self, lo: float, hi: float, mode: float | None = None) -> date:
        age = self.rng.triangular(lo, hi, mode) if mode is not None else self.rng.uniform(lo, hi)
        return years_before(self.as_of, age) - timedelta(days=self.rng.randrange(0, 60))

    def _after(self, base: date, lo: float, hi: float) -> date:
        """A birth `lo`–`hi` years after `base` (a child of someone born on `base`)."""
        return base + timedelta(days=int(self.rng.uniform(lo, hi) * 365.2425))

    def _elsewhere(self) -> str:
        city, towns = self.rng.choice(_ELSEWHERE)
        town = self.rng.choice(towns)
        if town.startswith("大字"):
            return f"{city}{town}{self.rng.randrange(1, 3000)}番地"
        return (
            f"{city}{town}{self.rng.randrange(1, 6)}丁目{self.rng.randrange(1, 30)}番"
            f"{self.rng.randrange(1, 25)}号"
        )

    def _surname(self) -> NameTriple:
        x = self.rng.random()
        if x < 0.021:
            return self.rng.choice(IVS_SURNAMES)
        if x < 0.023:
            return self.rng.choice(KICHI_SURNAMES)
        if x < 0.028:
            return self.rng.choice(COMPAT_SURNAMES)
        if self._gaiji and x < 0.0295:
            return self.rng.choice(self._gaiji).surname
        return self.pools.surname(self.rng)

    def _given(self, male: bool, birth: date) -> NameTriple:
        return self.pools.given(self.rng, male, birth.year)

    def _adult_occupation(self, male: bool, age: float) -> tuple[Occupation, bool]:
        """Main occupation and whether there is farm income on the side."""
        rng, farming = self.rng, self.spec.farming
        x = rng.random()
        if age < 19:
            return (Occupation.STUDENT if x < 0.8 else Occupation.EMPLOYEE), False
        if age < 23:
            return (
                Occupation.STUDENT
                if x < 0.45
                else Occupation.EMPLOYEE
                if x < 0.93
                else Occupation.UNEMPLOYED
            ), False
        side = rng.random() < farming * (2.0 if age >= 45 else 0.7)
        if age < 60:
            if x < farming * 0.35:
                return Occupation.FARMER, False
            if x < 0.07 + farming * 0.35:
                return Occupation.SELF_EMPLOYED, side
            if not male and x < 0.22:
                return Occupation.HOMEMAKER, side
            if x < 0.25:
                return Occupation.UNEMPLOYED, False
            return Occupation.EMPLOYEE, side
        if age < 65:
            if x < farming:
                return Occupation.FARMER, False
            if x < farming + 0.07:
                return Occupation.SELF_EMPLOYED, side
            if x < 0.65:
                return Occupation.EMPLOYEE, side
            return (Occupation.PENSIONER if male or x < 0.85 else Occupation.HOMEMAKER), side
        if age < 75:
            if x < farming * 1.2:
                return Occupation.FARMER, False
            if x < 0.25 + farming:
                return Occupation.EMPLOYEE, side  # 再雇用, with a pension
            return Occupation.PENSIONER, side
        if x < farming * 0.6:
            return Occupation.FARMER, False
        return Occupation.PENSIONER, side and age < 85

    def _member(self, rel: str, male: bool, birth: date, **kw: object) -> _Member:
        age = (self.as_of - birth).days / 365.2425
        if "occupation" not in kw:
            if age < 16:
                kw["occupation"] = Occupation.CHILD
            else:
                occupation, side = self._adult_occupation(male, age)
                kw["occupation"] = occupation
                kw.setdefault("side_farm", side)
        return _Member(rel, male, birth, **kw)  # type: ignore[arg-type]

    def _children(
        self, mother_birth: date, count: int, rel: str = "子", max_age: float = 45.0
    ) -> list[_Member]:
        kids = []
        for _ in range(count):
            birth = self._after(mother_birth, 22, 41)
            if birth > self.as_of or (self.as_of - birth).days > max_age * 365.2425:
                continue
            kids.append(self._member(rel, self.rng.random() < 0.51, birth))
        kids.sort(key=lambda m: m.birth)
        return kids

    def _moved_out(self, member: _Member, earliest: date) -> None:
        """Turn `member` into a 除票 of someone who left for work or study."""
        start = max(earliest, self.as_of - timedelta(days=365 * 6))
        span = (self.as_of - start).days
        if span <= 0:
            return
        day = start + timedelta(days=self.rng.randrange(span))
        member.removal = Removal(RemovalReason.MOVED_OUT, day, self._elsewhere())

    def _died(self, member: _Member, earliest: date, years: int = 10) -> None:
        start = max(earliest, self.as_of - timedelta(days=365 * years))
        span = (self.as_of - start).days
        if span <= 0:
            return
        day = start + timedelta(days=self.rng.randrange(span))
        member.removal = Removal(RemovalReason.DIED, day)

    # ------------------------------------------------------------------ kinds

    def _plan(self, kind: str) -> _Plan:
        rng = self.rng
        plan = _Plan(kind)
        m = plan.members
        if kind == "single_elderly":
            male = rng.random() < 0.32
            birth = self._birth(65, 101, 81)
            m.append(
                self._member(
                    "世帯主",
                    male,
                    birth,
                    occupation=Occupation.PENSIONER,
                    side_farm=rng.random() < self.spec.farming,
                )
            )
            if not male and rng.random() < 0.4:
                husband = self._member(
                    "世帯主", True, self._after(birth, -7, 0), occupation=Occupation.PENSIONER
                )
                self._died(husband, birth + timedelta(days=365 * 60))
                if husband.removal is not None:
                    m.append(husband)
        elif kind == "elderly_couple":
            birth = self._birth(65, 97, 75)
            m.append(self._member("世帯主", True, birth))
            m.append(self._member("妻", False, self._after(birth, -1, 7)))
        elif kind == "single_adult":
            male = rng.random() < 0.65
            m.append(self._member("世帯主", male, self._birth(19, 64, 32)))
            plan.native = rng.random() < 0.45
            plan.owns_home = plan.native and rng.random() < 0.5
            plan.apartment = not plan.owns_home and rng.random() < 0.6
        elif kind == "couple":
            birth = self._birth(24, 64, 56)
            m.append(self._member("世帯主", True, birth))
            rel = "妻（未届）" if rng.random() < 0.04 else "妻"
            wife = self._member(rel, False, self._after(birth, -2, 6))
            if rel != "妻":
                wife.surname = self._surname()
            m.append(wife)
            plan.native = rng.random() < 0.6
        elif kind in ("young_family", "single_parent"):
            single = kind == "single_parent"
            head_male = not single or rng.random() < 0.12
            birth = self._birth(25, 52, 39)
            if single:
                mother_birth = birth if not head_male else self._after(birth, -2, 5)
                m.append(self._member("世帯主", head_male, birth))
            else:
                m.append(self._member("世帯主", True, birth))
                mother_birth = self._after(birth, -2, 6)
                wife = self._member("妻", False, mother_birth)
                if rng.random() < 0.06:
                    wife.former_surname = self._surname()[:2]
                m.append(wife)
            count = rng.choices((1, 2, 3, 4), (32, 45, 19, 4))[0]
            kids = self._children(mother_birth, count, max_age=26)
            for kid in kids:
                if (self.as_of - kid.birth).days > 19 * 365 and rng.random() < 0.3:
                    self._moved_out(kid, kid.birth + timedelta(days=18 * 365))
            m.extend(kids)
            plan.native = rng.random() < (0.55 if self.spec.code == "15307" else 0.7)
            plan.owns_home = rng.random() < (0.75 if not single else 0.4)
        elif kind == "elder_with_child":
            male = rng.random() < 0.3
            birth = self._birth(70, 101, 86)
            m.append(self._member("世帯主", male, birth, occupation=Occupation.PENSIONER))
            child_male = rng.random() < 0.6
            m.append(self._member("子", child_male, self._after(birth, 22, 40)))
            if not male and rng.random() < 0.35:
                husband = self._member(
                    "世帯主", True, self._after(birth, -6, 0), occupation=Occupation.PENSIONER
                )
                self._died(husband, birth + timedelta(days=365 * 65))
                if husband.removal is not None:
                    m.append(husband)
            elif male and rng.random() < 0.35:
                wife = self._member(
                    "妻", False, self._after(birth, 0, 6), occupation=Occupation.PENSIONER
                )
                self._died(wife, birth + timedelta(days=365 * 65))
                if wife.removal is not None:
                    m.append(wife)
        elif kind == "three_gen_old":
            birth = self._birth(62, 90, 74)
            m.append(self._member("世帯主", True, birth))
            wife_birth = self._after(birth, -1, 6)
            m.append(self._member("妻", False, wife_birth))
            son_birth = min(self._after(wife_birth, 22, 36), years_before(self.as_of, 27))
            m.append(self._member("子", True, son_birth))
            if rng.random() < 0.15:
                m.append(self._member("子", False, self._after(wife_birth, 24, 40)))
            daughter_in_law = self._member("子の妻", False, self._after(son_birth, -3, 6))
            if rng.random() < 0.05:
                daughter_in_law.former_surname = self._surname()[:2]
            m.append(daughter_in_law)
            m.extend(self._children(daughter_in_law.birth, rng.choice((1, 2, 2, 3)), "孫"))
        elif kind == "three_gen_mid":
            birth = self._birth(40, 63, 52)
            m.append(self._member("世帯主", True, birth))
            wife_birth = self._after(birth, -2, 6)
            m.append(self._member("妻", False, wife_birth))
            kids = self._children(wife_birth, rng.choice((0, 1, 2, 2, 3)))
            for kid in kids:
                if (self.as_of - kid.birth).days > 20 * 365 and rng.random() < 0.35:
                    self._moved_out(kid, kid.birth + timedelta(days=18 * 365))
            m.extend(kids)
            mother_birth = max(self._after(birth, -38, -22), years_before(self.as_of, 100))
            mother = self._member("母", False, mother_birth, occupation=Occupation.PENSIONER)
            father_birth = self._after(mother_birth, -6, 0)
            father = self._member("父", True, father_birth, occupation=Occupation.PENSIONER)
            if (self.as_of - father_birth).days < 96 * 365 and rng.random() < 0.45:
                m.append(father)
            elif rng.random() < 0.3:
                self._died(father, father_birth + timedelta(days=365 * 65))
                if father.removal is not None:
                    m.append(father)
            m.insert(len(m), mother)
        elif kind == "foreign_single":
            self._foreign_single(plan)
        elif kind == "foreign_family":
            self._foreign_family(plan)
        elif kind == "mixed_marriage":
            self._mixed_marriage(plan)
        else:
            self._other(plan)
        return plan

    def _residence(self, status: str, arrived: date) -> ForeignResidentItems:
        """在留資格 items for a 中長期在留者; the nationality is filled in by the caller."""
        if status == "永住者":
            return ForeignResidentItems("", "中長期在留者", "永住者", "無期限", None)
        if status == "特別永住者":
            return ForeignResidentItems("", "特別永住者", "", "", None)
        unit, choices = _RESIDENCE[status]
        years = self.rng.choice(choices)
        # Renewed in whole periods since arrival; the current one covers as_of. A few
        # expired a few days ago and are within the 特例期間 while renewal is pending.
        expiry = arrived
        while expiry <= self.as_of:
            expiry = (
                expiry.replace(year=expiry.year + years)
                if not (expiry.month == 2 and expiry.day == 29)
                else date(expiry.year + years, 2, 28)
            )
        if self.rng.random() < 0.03:
            expiry = self.as_of - timedelta(days=self.rng.randrange(1, 40))
        return ForeignResidentItems("", "中長期在留者", status, f"{years}{unit}", expiry)

    def _foreign_member(
        self,
        rel: str,
        male: bool,
        birth: date,
        nationality: str,
        status: str,
        arrived: date,
        family: tuple[str, str] | None = None,
        **kw: object,
    ) -> tuple[_Member, tuple[str, str]]:
        name, kana, surname = foreign_name(self.rng, nationality, male, family)
        items = self._residence(status, max(arrived, birth))
        alias, alias_kana = "", ""
        if nationality in ("中国", "韓国") and self.rng.random() < 0.3:
            sur = self.pools.surname(self.rng)
            alias, alias_kana = full_name(sur, self._given(male, birth))
        items = ForeignResidentItems(
            nationality,
            items.status,
            items.residence_status,
            items.period_of_stay,
            items.expiry,
            alias,
            alias_kana,
        )
        member = self._member(rel, male, birth, foreign=items, foreign_name=(name, kana), **kw)
        return member, surname

    def _foreign_single(self, plan: _Plan) -> None:
        rng = self.rng
        nationality = _weighted(rng, _FOREIGN_SINGLE_NATIONS)
        if nationality == "韓国":
            status = "特別永住者" if rng.random() < 0.6 else "永住者"
        else:
            status = _weighted(
                rng,
                (
                    ("技能実習", 50.0),
                    ("特定技能", 28.0),
                    ("技術・人文知識・国際業務", 10.0),
                    ("永住者", 7.0),
                    ("定住者", 5.0),
                ),
            )
        old = status in ("特別永住者", "永住者")
        birth = self._birth(22, 70, 45) if old else self._birth(19, 38, 25)
        if status == "特別永住者":
            arrived = birth
            plan.previous_address = ""
        else:
            years = 3 if status == "技能実習" else 8
            arrived = self.as_of - timedelta(days=rng.randrange(5, 365 * years))
            plan.previous_address = (
                f"国外（{nationality}）" if rng.random() < 0.8 else self._elsewhere()
            )
        member, _ = self._foreign_member(
            "世帯主",
            rng.random() < 0.6,
            birth,
            nationality,
            status,
            arrived,
            occupation=Occupation.EMPLOYEE
            if not old or rng.random() < 0.7
            else Occupation.SELF_EMPLOYED,
        )
        if status == "技能実習" and rng.random() < 0.04:
            # A trainee who left the workplace and could not be found: struck off.
            span = max(1, (self.as_of - arrived).days)
            member.removal = Removal(
                RemovalReason.STRUCK_OFF, arrived + timedelta(days=rng.randrange(span))
            )
        plan.members.append(member)
        plan.native = status == "特別永住者"
        plan.moved_in = None if plan.native else arrived
        plan.owns_home = old and rng.random() < 0.5
        plan.apartment = not plan.owns_home

    def _foreign_family(self, plan: _Plan) -> None:
        rng = self.rng
        nationality = _weighted(
            rng, (("中国", 35.0), ("フィリピン", 20.0), ("ベトナム", 25.0), ("韓国", 20.0))
        )
        special = nationality == "韓国" and rng.random() < 0.7
        head_status = (
            "特別永住者"
            if special
            else _weighted(
                rng, (("永住者", 50.0), ("技術・人文知識・国際業務", 30.0), ("定住者", 20.0))
            )
        )
        birth = self._birth(28, 75 if special else 55, 45)
        arrived = birth if special else self.as_of - timedelta(days=rng.randrange(200, 365 * 15))
        head, family = self._foreign_member(
            "世帯主", True, birth, nationality, head_status, arrived
        )
        wife_birth = self._after(birth, -2, 7)
        wife_status = (
            "特別永住者"
            if special
            else "永住者"
            if head_status == "永住者" and rng.random() < 0.6
            else "家族滞在"
        )
        wife, _ = self._foreign_member("妻", False, wife_birth, nationality, wife_status, arrived)
        plan.members += [head, wife]
        for kid in self._children(wife_birth, rng.choice((0, 1, 2)), max_age=20):
            kid_status = (
                "特別永住者" if special else "永住者" if wife_status == "永住者" else "家族滞在"
            )
            child, _ = self._foreign_member(
                "子",
                kid.male,
                kid.birth,
                nationality,
                kid_status,
                max(arrived, kid.birth),
                family=family,
                occupation=kid.occupation,
            )
            plan.members.append(child)
        plan.native = special
        plan.moved_in = None if special else arrived
        plan.previous_address = "" if special else f"国外（{nationality}）"
        plan.owns_home = rng.random() < (0.7 if special else 0.3)

    def _mixed_marriage(self, plan: _Plan) -> None:
        rng = self.rng
        birth = self._birth(32, 68, 50)
        plan.members.append(self._member("世帯主", True, birth))
        nationality = _weighted(
            rng, (("フィリピン", 40.0), ("中国", 40.0), ("ベトナム", 10.0), ("韓国", 10.0))
        )
        wife_birth = self._after(birth, 3, 18)
        married = self.as_of - timedelta(days=rng.randrange(100, 365 * 20))
        status = (
            "永住者"
            if (self.as_of - married).days > 365 * 5 and rng.random() < 0.6
            else "日本人の配偶者等"
        )
        wife, _ = self._foreign_member(
            "妻",
            False,
            wife_birth,
            nationality,
            status,
            married,
            joined=married,
            previous_address=f"国外（{nationality}）",
        )
        # A 通称 in the husband's surname, filled in once the household's surname is fixed.
        wife.alias_in_household_surname = rng.random() < 0.5
        plan.members.append(wife)
        plan.members.extend(
            k
            for k in self._children(wife_birth, rng.choice((0, 1, 2)), max_age=20)
            if k.birth >= married
        )

    def _other(self, plan: _Plan) -> None:
        rng = self.rng
        m = plan.members
        variant = rng.random()
        if variant < 0.35:  # elderly siblings
            male = rng.random() < 0.4
            birth = self._birth(68, 95, 80)
            m.append(self._member("世帯主", male, birth, occupation=Occupation.PENSIONER))
            sister_birth = self._after(birth, -5, 8)
            rel = "妹" if sister_birth > birth else "姉"
            m.append(self._member(rel, False, sister_birth, occupation=Occupation.PENSIONER))
        elif variant < 0.6:  # grandmother raising a grandchild
            birth = self._birth(60, 85, 72)
            m.append(self._member("世帯主", False, birth, occupation=Occupation.PENSIONER))
            m.append(self._member("孫", rng.random() < 0.5, self._after(birth, 48, 70)))
            if m[-1].birth > self.as_of:
                m.pop()
        elif variant < 0.8:  # young couple living with the wife's mother
            birth = self._birth(28, 50, 38)
            m.append(self._member("世帯主", True, birth))
            wife_birth = self._after(birth, -2, 6)
            m.append(self._member("妻", False, wife_birth))
            m.extend(self._children(wife_birth, rng.choice((0, 1, 2)), max_age=20))
            mother = self._member(
                "妻の母", False, self._after(wife_birth, -36, -22), occupation=Occupation.PENSIONER
            )
            mother.surname = self.pools.surname(rng)
            m.append(mother)
        else:  # a lodger
            m.append(self._member("世帯主", rng.random() < 0.7, self._birth(40, 80, 60)))
            lodger = self._member("同居人", rng.random() < 0.6, self._birth(25, 75, 50))
            lodger.surname = self.pools.surname(rng)
            m.append(lodger)

    # ------------------------------------------------------------------ materialise

    def _address(self, plan: _Plan) -> tuple[District, str]:
        rng = self.rng
        if plan.same_address_as is not None:
            hh = plan.same_address_as.household
            district = next(d for d in self.districts if d.name == hh.district)
            return district, hh.address
        if plan.apartment and self._apartments and rng.random() < 0.85:
            name, district, lot = rng.choice(self._apartments)
            room = self._apartment_rooms.get(name, 0)
            self._apartment_rooms[name] = room + 1
            # 3 floors of 8 rooms; a full building gets a sister building on the same lot.
            building, room = divmod(room, 24)
            floor, number = divmod(room, 8)
            wing = f"{building + 1}号棟" if building else ""
            return district, f"{lot}{SPACE}{name}{wing}{floor + 1}{number + 1:02d}号室"
        while True:
            district = self._pick_district()
            banchi = rng.randrange(1, self._banchi_max)
            address = (
                f"{banchi}番地" if rng.random() < 0.55 else f"{banchi}番地{rng.randrange(1, 25)}"
            )
            if (district.name, address) not in self._used_addresses:
                self._used_addresses.add((district.name, address))
                return district, address

    def _resident_id(self) -> str:
        self._resident_serial += 1
        return f"{self.spec.code}{self._resident_serial:08d}"

    def _materialise(self, plan: _Plan) -> HouseholdDraft | None:
        rng, as_of = self.rng, self.as_of
        if not plan.members:
            return None
        district, address = self._address(plan)
        full_address = f"{self._town_prefix}大字{district.name}{address}"
        self._household_serial += 1
        household_id = f"{self.spec.code}{self._household_serial:07d}"
        head = plan.members[0]
        forced = self._forced_surnames.pop(self._household_serial, None)
        if forced is not None and (head.foreign_name or plan.same_address_as):
            self._forced_surnames[self._household_serial + 1] = forced
            forced = None
        if plan.same_address_as is not None:
            next_door = plan.same_address_as.members[0].resident
            surname = (next_door.name.split(SPACE)[0], next_door.kana.split(SPACE)[0], "")
        else:
            surname = forced or self._surname()
        oldest = min(x.birth for x in plan.members)
        if plan.native:
            moved_in = None
        elif plan.moved_in is not None:
            moved_in = plan.moved_in
        else:
            latest_start = max(oldest + timedelta(days=365 * 19), as_of - timedelta(days=365 * 35))
            span = (as_of - latest_start).days
            # Recent arrivals are over-represented (new houses near the city, job moves).
            recent = rng.random() < 0.25
            days = rng.randrange(1, 400) if recent or span <= 1 else rng.randrange(1, span)
            moved_in = as_of - timedelta(days=days)
        previous = plan.previous_address or (self._elsewhere() if moved_in else "")
        # A native household may have built its house later: address_set after birth.
        rebuilt = (
            None
            if moved_in
            else as_of - timedelta(days=rng.randrange(30, 365 * 30))
            if rng.random() < 0.3
            else None
        )
        if moved_in is None or rng.random() < 0.3:
            honseki = f"{self._town_prefix}大字{district.name}{rng.randrange(1, 3000)}番地"
        else:
            city, towns = rng.choice(_ELSEWHERE)
            honseki = f"{city}{rng.choice(towns)}{rng.randrange(1, 3000)}番地"
        head_name = full_name(
            head.surname or surname, head.given or self._given(head.male, head.birth)
        )
        if head.given is None:
            head.given = (head_name[0].split(SPACE)[1], head_name[1].split(SPACE)[1], "")
        residents: list[Person] = []
        living: list[Person] = []
        removed: list[Person] = []
        for member in plan.members:
            person = self._resident(
                member,
                plan,
                household_id,
                surname,
                moved_in,
                previous,
                rebuilt,
                honseki,
                head_name[0],
            )
            if person.resident.removal is None:
                living.append(person)
            else:
                removed.append(person)
        residents = living + removed
        head_person = residents[0]
        if living and head_person.resident.relationship != "世帯主":
            raise AssertionError("the first living member must be the 世帯主")
        settled = max((p.resident.address_set for p in living), default=as_of)
        if living and (as_of - settled).days > 30 and rng.random() < 0.006:
            # The whole household left; its record stays, every member a 除票.
            day = settled + timedelta(days=rng.randrange(1, (as_of - settled).days))
            destination = self._elsewhere()
            residents = [
                replace(
                    p,
                    resident=replace(
                        p.resident, removal=Removal(RemovalReason.MOVED_OUT, day, destination)
                    ),
                )
                if p.resident.removal is None
                else p
                for p in residents
            ]
        household = Household(
            id=household_id,
            town_code=self.spec.code,
            district=district.name,
            address=address,
            postal_code=district.postal_code,
            head_id=head_person.resident.id,
        )
        return HouseholdDraft(household, plan.kind, residents, plan.owns_home, full_address)

    def _resident(
        self,
        member: _Member,
        plan: _Plan,
        household_id: str,
        surname: NameTriple,
        moved_in: date | None,
        previous: str,
        rebuilt: date | None,
        honseki: str,
        head_name: str,
    ) -> Person:
        rng, as_of = self.rng, self.as_of
        birth = member.birth
        if member.joined is not None:
            became, prev = member.joined, member.previous_address or self._elsewhere()
        elif (
            member.rel in ("妻", "子の妻", "妻（未届）")
            and moved_in is None
            and (rng.random() < 0.6)
        ):
            # Married in from elsewhere.
            became = min(as_of, birth + timedelta(days=int(rng.uniform(22, 32) * 365.2425)))
            prev = self._elsewhere()
        elif moved_in is not None and birth < moved_in:
            became, prev = moved_in, previous
        else:
            became, prev = birth, ""
        address_set = max(became, rebuilt) if rebuilt is not None else became
        if member.removal is not None and member.removal.date < became:
            member.removal = Removal(member.removal.reason, became, member.removal.destination)
        if member.removal is not None and address_set > member.removal.date:
            address_set = became
        notified = min(as_of, address_set + timedelta(days=rng.randrange(0, 14)))
        if member.removal is not None:
            notified = min(notified, member.removal.date)
        recent = (as_of - address_set).days < 180
        certified = not (recent and rng.random() < 0.7) and rng.random() > 0.004
        if member.foreign_name is not None:
            name, kana = member.foreign_name
            kind = ResidentKind.FOREIGN
            foreign = member.foreign
            if foreign is not None and member.alias_in_household_surname:
                alias, alias_kana = full_name(surname, self._given(member.male, birth))
                foreign = replace(foreign, alias=alias, alias_kana=alias_kana)
            own_honseki, hittosha = "", ""
        else:
            sur = member.surname or surname
            given = member.given or self._given(member.male, birth)
            name, kana = full_name(sur, given)
            kind, foreign = ResidentKind.JAPANESE, None
            own_honseki = honseki
            hittosha = member.hittosha or (
                head_name if member.rel in ("世帯主", "妻", "夫", "子", "孫", "子の妻") else name
            )
        resident = Resident(
            id=self._resident_id(),
            town_code=self.spec.code,
            household_id=household_id,
            name=name,
            kana=kana,
            kana_certified=certified,
            birth_date=birth,
            sex=Sex.MALE if member.male else Sex.FEMALE,
            relationship=member.rel,
            became_resident=became,
            address_set=address_set,
            notified=notified,
            previous_address=prev,
            juminhyo_code=self.numbers.juminhyo_code(rng),
            my_number=self.numbers.my_number(rng),
            kind=kind,
            honseki=own_honseki,
            hittosha=hittosha,
            former_surname=member.former_surname[0],
            former_surname_kana=member.former_surname[1],
            foreign=foreign,
            removal=member.removal,
        )
        return Person(
            resident,
            member.occupation,
            member.side_farm,
            fisher=member.occupation is Occupation.SELF_EMPLOYED
            and rng.random() < self.spec.fishing,
        )

    # ------------------------------------------------------------------ build

    def build(self) -> list[HouseholdDraft]:
        drafts: list[HouseholdDraft] = []
        living = 0
        rng = self.rng
        while living < self.target:
            kind = _weighted(rng, self._kinds)
            plan = self._plan(kind)
            draft = self._materialise(plan)
            if draft is None:
                continue
            drafts.append(draft)
            living += sum(1 for p in draft.members if p.resident.removal is None)
            if kind == "young_family" and rng.random() < 0.06 and living < self.target:
                # The head's parents, registered as their own household at the same address.
                parents = self._parents_next_door(draft)
                if parents is not None:
                    drafts.append(parents)
                    living += sum(1 for p in parents.members if p.resident.removal is None)
        return drafts

    def _parents_next_door(self, draft: HouseholdDraft) -> HouseholdDraft | None:
        head = draft.members[0].resident
        if head.removal is not None or head.kind is ResidentKind.FOREIGN:
            return None
        plan = _Plan("elderly_couple", same_address_as=draft)
        father_birth = self._after(head.birth_date, -36, -24)
        if (self.as_of - father_birth).days > 97 * 365:
            return None
        plan.members.append(self._member("世帯主", True, father_birth))
        plan.members.append(self._member("妻", False, self._after(father_birth, -1, 6)))
        return self._materialise(plan)
