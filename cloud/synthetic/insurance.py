"""国民健康保険: who is a member, what their 資格確認書 prints, and the 国保税 billed.

NHI covers those under 75 who are not in an employer's scheme: farmers, the
self-employed, retirees, the unemployed, and the families of such people. Employees and
the spouse and children they support are in 社会保険; from 75 everyone is in 後期高齢者医療.
So a farming couple is insured here while their salaried son's family is not, and the
three generations of one household hold different cards.

Besides current members the export has records that ended: people who turned 75 (lost on
the birthday), who found a job, who died (lost the next day) or left (lost on the day).

負担割合: 30 %; 20 % before school age and from 70 to 74 (30 % for a few with 現役並み
所得); the 発効期日 for 70+ is the first of the month after the 70th birthday, or the
annual re-assessment on 1 August. About a fifth of members have no マイナ保険証 and get the
資格確認書. 国保税 is billed to the 世帯主 (even when the 世帯主 is not insured: 擬制世帯主)
in 8 期, July to February.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from shared.model import NhiMember, TaxKind

from .numbers import add_years, age_on, month_end
from .payments import PaymentBook
from .population import HouseholdDraft, Occupation, Person

_NON_NHI_OCCUPATIONS = (Occupation.EMPLOYEE,)
_LIMIT_UNDER_70 = ("区分ア", "区分イ", "区分ウ", "区分エ", "区分オ")
_LIMIT_70_74 = ("現役並みⅠ", "一般", "低所得Ⅱ", "低所得Ⅰ")


class InsuranceBuilder:
    def __init__(
        self,
        town_code: str,
        district_numbers: dict[str, int],
        as_of: date,
        rng: random.Random,
        book: PaymentBook,
        income: dict[tuple[str, int], int],
    ) -> None:
        self.town_code = town_code
        self.district_numbers = district_numbers
        self.as_of = as_of
        self.rng = rng
        self.book = book
        self.income = income
        self.members: list[NhiMember] = []
        self._household_serial = 0
        # The current 資格確認書 cycle runs 1 August to 31 July.
        cycle = as_of.year if (as_of.month, as_of.day) >= (8, 1) else as_of.year - 1
        self.cycle_start = date(cycle, 8, 1)
        self.cycle_end = date(cycle + 1, 7, 31)

    def _insured(self, draft: HouseholdDraft) -> list[Person]:
        """Members in NHI: not employees, not supported by an employee, under 75."""
        members = draft.members
        employee_ids = {p.resident.id for p in members if p.occupation in _NON_NHI_OCCUPATIONS}
        supported_rels = {"妻", "夫", "子", "孫", "子の妻"}
        has_employee_parent = any(
            p.resident.relationship in ("世帯主", "妻", "夫", "子")
            and p.resident.id in employee_ids
            for p in members
        )
        insured: list[Person] = []
        for person in members:
            r = person.resident
            if r.id in employee_ids:
                # Part-time wives below the 社会保険 threshold are NHI or dependants.
                continue
            occupation = person.occupation
            if occupation in (Occupation.CHILD, Occupation.STUDENT, Occupation.HOMEMAKER) and (
                has_employee_parent and r.relationship in supported_rels
            ):
                continue
            insured.append(person)
        return insured

    def household(self, draft: HouseholdDraft) -> None:
        rng, as_of = self.rng, self.as_of
        insured = self._insured(draft)
        records: list[tuple[Person, date, date | None]] = []
        for person in insured:
            r = person.resident
            age = age_on(r.birth_date, as_of)
            acquired = max(r.became_resident, date(as_of.year - rng.randrange(1, 30), 4, 1))
            if age < 20:
                acquired = r.became_resident
            lost: date | None = None
            seventy_five = add_years(r.birth_date, 75)
            if r.removal is not None:
                if r.removal.date < as_of - timedelta(days=365 * 3):
                    continue
                lost = (
                    r.removal.date + timedelta(days=1)
                    if r.removal.reason.value == "死亡"
                    else r.removal.date
                )
                if age_on(r.birth_date, r.removal.date) >= 75:
                    continue
            elif age >= 75:
                if seventy_five < as_of - timedelta(days=365 * 2):
                    continue  # long since in 後期高齢者医療
                lost = seventy_five
            if acquired >= (lost or date.max):
                acquired = lost - timedelta(days=rng.randrange(200, 4000)) if lost else acquired
                acquired = max(acquired, r.became_resident)
            records.append((person, acquired, lost))
        # Someone who left NHI for a job within the last two years.
        for person in draft.members:
            r = person.resident
            if (
                person.occupation is Occupation.EMPLOYEE
                and r.removal is None
                and 20 <= age_on(r.birth_date, as_of) < 60
                and rng.random() < 0.04
            ):
                lost = as_of - timedelta(days=rng.randrange(10, 700))
                acquired = max(r.became_resident, lost - timedelta(days=rng.randrange(90, 2000)))
                if acquired < lost:
                    records.append((person, acquired, lost))
        if not records:
            return
        self._household_serial += 1
        number = f"{self._household_serial:07d}"
        symbol = f"{self.district_numbers.get(draft.household.district, 0):03d}"
        for branch, (person, acquired, lost) in enumerate(records, start=1):
            self.members.append(self._member(person, symbol, number, branch, acquired, lost))
        self._bill(draft, [(p, a, lost) for p, a, lost in records])

    def _member(
        self,
        person: Person,
        symbol: str,
        number: str,
        branch: int,
        acquired: date,
        lost: date | None,
    ) -> NhiMember:
        rng = self.rng
        r = person.resident
        day = lost - timedelta(days=1) if lost else self.as_of
        age = age_on(r.birth_date, day)
        copay, effective = 30, None
        school_start = date(
            add_years(r.birth_date, 6).year
            + (0 if (r.birth_date.month, r.birth_date.day) < (4, 2) else 1),
            4,
            1,
        )
        if day < school_start:
            copay = 20
        elif age >= 70:
            copay = 30 if rng.random() < 0.08 else 20
            seventy = add_years(r.birth_date, 70)
            start = (
                seventy
                if seventy.day == 1
                else month_end(seventy.year, seventy.month) + timedelta(days=1)
            )
            effective = max(start, self.cycle_start)
        valid_from = max(acquired, self.cycle_start)
        valid_until = self.cycle_end
        if age >= 70:
            valid_until = min(valid_until, add_years(r.birth_date, 75) - timedelta(days=1))
        if lost is not None:
            valid_until = min(valid_until, lost - timedelta(days=1))
            valid_from = min(valid_from, valid_until)
        limit = ""
        if rng.random() < 0.1:
            limit = rng.choice(_LIMIT_70_74 if age >= 70 else _LIMIT_UNDER_70)
        return NhiMember(
            resident_id=r.id,
            town_code=self.town_code,
            symbol=symbol,
            number=number,
            branch=f"{branch:02d}",
            acquired=acquired,
            lost=lost,
            copay_percent=copay,
            copay_effective=effective,
            valid_from=valid_from,
            valid_until=valid_until,
            limit_category=limit,
            has_my_number_insurance=rng.random() < (0.7 if age >= 70 else 0.83),
        )

    def _bill(self, draft: HouseholdDraft, records: list[tuple[Person, date, date | None]]) -> None:
        """国保税 per fiscal year for the members insured on 1 April (a rough rendering:
        所得割 9 %, 均等割, 平等割, 介護分 for 40–64, 7/5/2割軽減, the legal cap)."""
        head = draft.members[0].resident
        for fiscal_year in range(self.as_of.year - 2, self.as_of.year + 1):
            april1 = date(fiscal_year, 4, 1)
            if april1 > self.as_of:
                continue
            covered = [
                p
                for p, acquired, lost in records
                if acquired <= april1 and (lost is None or lost > april1)
            ]
            if not covered:
                continue
            n = len(covered)
            incomes = [self.income.get((p.resident.id, fiscal_year), 0) for p in covered]
            household_income = sum(incomes)
            income_share = sum(max(0, i - 430_000) for i in incomes) * 9 // 100
            per_person = 34_000 * n
            care = 12_000 * sum(
                1 for p in covered if 40 <= age_on(p.resident.birth_date, april1) < 65
            )
            flat = 27_000
            if household_income <= 430_000 + 100_000 * (n - 1):
                relief = 0.3
            elif household_income <= 430_000 + 295_000 * n:
                relief = 0.5
            elif household_income <= 430_000 + 545_000 * n:
                relief = 0.8
            else:
                relief = 1.0
            total = income_share + int((per_person + flat) * relief) + care
            total = min(total, 1_060_000) // 100 * 100
            self.book.bill(head.id, TaxKind.NHI, fiscal_year, total)
