"""個人住民税 for three fiscal years, and 固定資産税, from what each person lives on.

Fiscal year N assesses the income of calendar year N−1 and is issued by the town where the
person lived on 1 January of N, so someone who moved in during N has no year-N record here
and someone who left or died after that date still has one.

Incomes are 所得 (after 給与所得控除 / 公的年金等控除), by kind and consistent with age and
occupation: salaries for the working age (a part-time wage for many wives), pensions from
65 (厚生年金 or only 国民年金 for farmers and the self-employed), rice-farming income —
often a loss on a 兼業農家's small paddy — and a little rent. Dependants (a spouse without
income, children of 16 and more, a parent) are counted on the household's main earner.

The tax is a rough rendering of the real computation, close enough for certificates to look
right: 均等割 3,000 + 1,000 yen; 所得割 6 % + 4 % of 課税標準 less 調整控除; the 非課税
thresholds of a 3級地 town, scaled by dependants. 森林環境税 (national, collected with it
since FY2024) is not modelled.

Installments: only 普通徴収 taxpayers have 住民税 期 (farmers, the self-employed, pensioners
under 65, some others); salary and most pension taxpayers pay through 特別徴収 (withheld by
the employer or the pension), which the town does not bill. 固定資産税 is billed to the
世帯主 of an owner-occupied household.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from shared.model import FilingStatus, IncomeKind, TaxAssessment, TaxKind

from .numbers import age_on
from .payments import PaymentBook
from .population import HouseholdDraft, Occupation, Person

BASIC = 430_000  # 基礎控除 (住民税)


@dataclass(slots=True)
class _Base:
    """A person's yearly 収入 before variation; amounts in yen."""

    salary: int = 0
    pension: int = 0
    agriculture: int = 0  # already 所得
    business: int = 0  # already 所得
    real_estate: int = 0  # already 所得
    retire_age: int = 65


def salary_income(revenue: int) -> int:
    """給与所得 from 給与収入 (給与所得控除, 2020 table)."""
    if revenue <= 550_999:
        return 0
    if revenue <= 1_625_000:
        return revenue - 550_000
    if revenue <= 1_800_000:
        return revenue - (revenue * 40 // 100 - 100_000)
    if revenue <= 3_600_000:
        return revenue - (revenue * 30 // 100 + 80_000)
    if revenue <= 6_600_000:
        return revenue - (revenue * 20 // 100 + 440_000)
    if revenue <= 8_500_000:
        return revenue - (revenue * 10 // 100 + 1_100_000)
    return revenue - 1_950_000


def pension_income(revenue: int, age: int) -> int:
    """公的年金等の雑所得 (other income under 10 million yen)."""
    floor = 1_100_000 if age >= 65 else 600_000
    if revenue <= floor:
        return 0
    if revenue <= 3_300_000 and age >= 65:
        return revenue - 1_100_000
    if revenue <= 1_300_000:
        return revenue - 600_000
    if revenue <= 4_100_000:
        return revenue * 75 // 100 - 275_000
    if revenue <= 7_700_000:
        return revenue * 85 // 100 - 685_000
    return revenue * 95 // 100 - 1_455_000


def resident_tax(
    total_income: int, deductions: int, dependants: int, minor: bool
) -> tuple[int, int]:
    """(市町村民税, 県民税) for one person: 均等割 + 所得割, nothing under the thresholds."""
    n = dependants
    if minor and total_income <= 1_350_000:
        return 0, 0
    if total_income <= 280_000 * (n + 1) + 100_000 + (168_000 if n else 0):
        return 0, 0
    municipal, prefectural = 3_000, 1_000
    if total_income > 350_000 * (n + 1) + 100_000 + (320_000 if n else 0):
        base = max(0, total_income - deductions) // 1000 * 1000
        if base:
            adjustment = 2_500 if base <= 2_000_000 else 1_500
            municipal += max(0, (base * 6 // 100 - adjustment * 6 // 10) // 100 * 100)
            prefectural += max(0, (base * 4 // 100 - adjustment * 4 // 10) // 100 * 100)
    return municipal, prefectural


class TaxBuilder:
    def __init__(
        self,
        town_code: str,
        town_prefix: str,
        districts: list[str],
        as_of: date,
        rng: random.Random,
        book: PaymentBook,
    ) -> None:
        self.town_code = town_code
        self.town_prefix = town_prefix
        self.districts = districts
        self.as_of = as_of
        self.rng = rng
        self.book = book
        self.years = (as_of.year - 2, as_of.year - 1, as_of.year)
        self.assessments: list[TaxAssessment] = []
        # (resident id, fiscal year) → 合計所得, for the NHI tax
        self.income: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ incomes

    def _base(self, person: Person) -> _Base:
        r, rng = person.resident, self.rng
        age = age_on(r.birth_date, self.as_of)
        male = r.sex.value == "男"
        base = _Base(retire_age=rng.choice((60, 60, 65, 65, 65, 70)))
        occupation = person.occupation
        if occupation is Occupation.EMPLOYEE:
            if r.foreign is not None and r.foreign.residence_status in ("技能実習", "特定技能"):
                base.salary = int(rng.uniform(1_900_000, 2_700_000))
            elif age >= 60:
                base.salary = int(rng.uniform(1_000_000, 3_600_000))
            elif male:
                base.salary = int(
                    min(9_500_000, (2_400_000 + (age - 22) * 90_000) * rng.lognormvariate(0, 0.25))
                )
            elif r.relationship in ("妻", "子の妻") and rng.random() < 0.55:
                base.salary = int(rng.uniform(600_000, 1_500_000))  # part-time
            else:
                base.salary = int(
                    min(7_000_000, (2_200_000 + (age - 22) * 50_000) * rng.lognormvariate(0, 0.25))
                )
        elif occupation is Occupation.FARMER:
            base.agriculture = int(rng.uniform(200_000, 3_500_000))
        elif occupation is Occupation.SELF_EMPLOYED:
            base.business = int(
                rng.uniform(600_000, 3_000_000)
                if person.fisher
                else rng.uniform(900_000, 5_500_000)
            )
        if person.side_farm:
            base.agriculture = int(rng.uniform(-400_000, 700_000))
        if age >= 60:
            if occupation in (Occupation.FARMER, Occupation.SELF_EMPLOYED) or (
                not male and rng.random() < 0.5
            ):
                base.pension = int(rng.uniform(500_000, 1_100_000))  # mostly 国民年金
            elif rng.random() < 0.93:
                base.pension = int(
                    rng.uniform(1_300_000, 2_900_000) if male else rng.uniform(700_000, 1_600_000)
                )
            if not male and r.relationship == "世帯主" and rng.random() < 0.4:
                base.pension //= 2  # the rest is a 遺族年金, which is not income
        if age >= 50 and rng.random() < 0.03:
            base.real_estate = int(rng.uniform(200_000, 1_500_000))
        return base

    def _incomes(
        self, person: Person, base: _Base, year: int
    ) -> tuple[tuple[IncomeKind, int], ...]:
        """所得 by kind for calendar year `year` (fiscal year `year` + 1)."""
        rng = self.rng
        age = year - person.resident.birth_date.year
        out: list[tuple[IncomeKind, int]] = []
        jitter = rng.uniform(0.95, 1.05)
        if base.salary and age < 76:
            salary = int(base.salary * jitter)
            if age >= base.retire_age + 5:
                salary //= 2
            out.append((IncomeKind.SALARY, salary_income(salary)))
        if base.pension and age >= 60:
            pension_age = 65 if base.pension < 1_200_000 else base.retire_age
            if age >= pension_age:
                out.append((IncomeKind.PENSION, pension_income(base.pension, age)))
        # In IncomeKind order, the order the export layout's columns give back.
        if base.business:
            out.append((IncomeKind.BUSINESS, int(base.business * jitter) // 1000 * 1000))
        if base.agriculture:
            out.append((IncomeKind.AGRICULTURE, int(base.agriculture * jitter) // 1000 * 1000))
        if base.real_estate:
            out.append((IncomeKind.REAL_ESTATE, base.real_estate))
        return tuple(out)

    # ------------------------------------------------------------------ assessments

    def household(self, draft: HouseholdDraft) -> None:
        members = draft.members
        bases = {
            p.resident.id: self._base(p) for p in members if p.occupation is not Occupation.CHILD
        }
        for fiscal_year in self.years:
            jan1 = date(fiscal_year, 1, 1)
            present = [
                p
                for p in members
                if p.resident.became_resident <= jan1
                and (p.resident.removal is None or p.resident.removal.date > jan1)
            ]
            if not present:
                continue
            year_end = date(fiscal_year - 1, 12, 31)
            ages = {p.resident.id: age_on(p.resident.birth_date, year_end) for p in present}
            incomes: dict[str, tuple[tuple[IncomeKind, int], ...]] = {}
            totals: dict[str, int] = {}
            for p in present:
                base = bases.get(p.resident.id)
                if base is not None:
                    income = self._incomes(p, base, fiscal_year - 1)
                    incomes[p.resident.id] = income
                    totals[p.resident.id] = sum(a for _, a in income)
            earner = max(
                present,
                key=lambda p: (totals.get(p.resident.id, 0), p.resident.relationship == "世帯主"),
            )
            earner_id = earner.resident.id
            dependant_ids = (
                {
                    p.resident.id
                    for p in present
                    if p.resident.id != earner_id
                    and totals.get(p.resident.id, 0) <= 480_000
                    and p.resident.relationship not in ("同居人", "世帯主")
                }
                if totals.get(earner_id, 0) > 0
                else set()
            )
            for person in present:
                if ages[person.resident.id] >= 16:
                    self._assess(
                        draft,
                        person,
                        fiscal_year,
                        jan1,
                        incomes,
                        totals,
                        earner_id,
                        dependant_ids,
                        present,
                        ages,
                    )

    def _assess(
        self,
        draft: HouseholdDraft,
        person: Person,
        fiscal_year: int,
        jan1: date,
        incomes: dict[str, tuple[tuple[IncomeKind, int], ...]],
        totals: dict[str, int],
        earner_id: str,
        dependant_ids: set[str],
        present: list[Person],
        ages: dict[str, int],
    ) -> None:
        rng = self.rng
        r = person.resident
        rid = r.id
        age = ages[rid]
        income = incomes.get(rid, ())
        total = totals.get(rid, 0)
        dependants = 0
        spouse = 0
        deductions: list[tuple[str, int]] = []
        if total > 0:
            deductions.append(("基礎控除", BASIC))
        if rid == earner_id and total > 0:
            for other in present:
                oid = other.resident.id
                if oid not in dependant_ids:
                    continue
                other_age = ages[oid]
                if other.resident.relationship in ("妻", "夫") and r.relationship == "世帯主":
                    deductions.append(("配偶者控除", 380_000 if other_age >= 70 else 330_000))
                    spouse = 1
                    continue
                dependants += 1
                if other_age < 16:
                    continue  # 年少扶養親族: counted, no deduction
                amount = 450_000 if 19 <= other_age <= 22 or other_age >= 70 else 330_000
                deductions.append(("扶養控除", amount))
        salary = 0
        if not income:
            if rid in dependant_ids:
                filing = FilingStatus.DEPENDANT
            else:
                filing = FilingStatus.NOT_FILED if rng.random() < 0.7 else FilingStatus.FILED
        elif len(income) == 1 and income[0][0] is IncomeKind.SALARY:
            filing = FilingStatus.EMPLOYER_REPORTED
            salary = income[0][1]
        elif len(income) == 1 and income[0][0] is IncomeKind.PENSION:
            filing = FilingStatus.PENSION_REPORTED
        else:
            filing = FilingStatus.FILED
            if income[0][0] is IncomeKind.SALARY:
                salary = income[0][1]
        municipal = prefectural = 0
        if total > 0:
            social = (
                salary * 15 // 100
                if salary
                else (
                    (120_000 if age >= 65 else 203_760 if age < 60 else 90_000) + total * 8 // 100
                )
            )
            deductions.append(("社会保険料控除", social))
            if rng.random() < 0.4:
                deductions.append(("生命保険料控除", rng.randrange(28, 71) * 1000))
            if age >= 65 and rng.random() < 0.2:
                deductions.append(("医療費控除", rng.randrange(30, 300) * 1000))
            if rng.random() < 0.03:
                deductions.append(("障害者控除", 260_000))
            municipal, prefectural = resident_tax(
                total, sum(a for _, a in deductions), dependants + spouse, age < 18
            )
        if r.address_set <= jan1:
            address = draft.full_address
        else:
            # Moved within the town during the year: the certificate prints the old address.
            address = (
                f"{self.town_prefix}大字{rng.choice(self.districts)}{rng.randrange(1, 3000)}番地"
            )
        self.assessments.append(
            TaxAssessment(
                rid,
                self.town_code,
                fiscal_year,
                filing,
                income,
                tuple(deductions),
                dependants,
                municipal,
                prefectural,
                address,
            )
        )
        self.income[(rid, fiscal_year)] = max(0, total)
        tax = municipal + prefectural
        if tax and self._ordinary_collection(income, age):
            self.book.bill(rid, TaxKind.RESIDENT, fiscal_year, tax)

    def _ordinary_collection(self, income: tuple[tuple[IncomeKind, int], ...], age: int) -> bool:
        """普通徴収? Salary is withheld by the employer, most pensions from 65 too."""
        kinds = {k for k, _ in income}
        if kinds - {IncomeKind.SALARY, IncomeKind.PENSION}:
            return True
        if IncomeKind.SALARY in kinds:
            return self.rng.random() < 0.04
        if IncomeKind.PENSION in kinds:
            return age < 65 or self.rng.random() < 0.25
        return True

    # ------------------------------------------------------------------ 固定資産税

    def property_tax(self, draft: HouseholdDraft) -> None:
        head = draft.members[0]
        if not draft.owns_home or head.resident.removal is not None:
            return
        rng = self.rng
        if rng.random() < 0.03:
            return  # under the 免税点
        farmer = any(p.occupation is Occupation.FARMER or p.side_farm for p in draft.members)
        annual = (
            int(rng.uniform(25_000, 160_000) + (rng.uniform(10_000, 70_000) if farmer else 0))
            // 100
            * 100
        )
        for fiscal_year in self.years:
            if head.resident.address_set > date(fiscal_year, 1, 1):
                continue  # 賦課期日 is 1 January
            self.book.bill(head.resident.id, TaxKind.PROPERTY, fiscal_year, annual)
