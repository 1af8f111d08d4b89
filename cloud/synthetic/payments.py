"""Bills split into 期 and paid — or not — by each taxpayer's habit.

A taxpayer has one habit for every tax (people who fall behind on 住民税 fall behind on
国保税 too): most pay by 口座振替 on the due date, some late, a few pay the whole year at
the first 期 (全期前納, so a 期 not yet due can already be paid), and a few fall into
arrears, sometimes paying part of a 期. A 期 whose due date is after `as_of` is 納期未到来:
unpaid unless prepaid.
"""

from __future__ import annotations

import enum
import functools
import random
from datetime import date, timedelta

from shared.model import Installment, TaxKind

from .numbers import month_end, next_business_day

_KIND_LETTER = {
    TaxKind.RESIDENT: "R",
    TaxKind.PROPERTY: "P",
    TaxKind.LIGHT_VEHICLE: "L",
    TaxKind.NHI: "N",
}


class Habit(enum.Enum):
    ON_TIME = "on_time"
    LATE = "late"
    PREPAY = "prepay"
    ARREARS = "arrears"


# 納期 as (years after the fiscal year, month, day); day 0 is the last day of the month.
# 住民税 普通徴収 4 期; 固定資産税 4 期; 軽自動車税 1 期; 国保税 8 期 from July to February.
_SCHEDULES: dict[TaxKind, tuple[tuple[int, int, int], ...]] = {
    TaxKind.RESIDENT: ((0, 6, 30), (0, 8, 31), (0, 10, 31), (1, 1, 31)),
    TaxKind.PROPERTY: ((0, 4, 30), (0, 7, 31), (0, 12, 25), (1, 2, 0)),
    TaxKind.LIGHT_VEHICLE: ((0, 5, 31),),
    TaxKind.NHI: (
        (0, 7, 0),
        (0, 8, 0),
        (0, 9, 0),
        (0, 10, 0),
        (0, 11, 0),
        (0, 12, 25),
        (1, 1, 0),
        (1, 2, 0),
    ),
}


@functools.cache
def due_dates(tax: TaxKind, fiscal_year: int) -> tuple[date, ...]:
    """The 納期限 of each 期, moved off weekends."""
    return tuple(
        next_business_day(month_end(fiscal_year + y, m) if d == 0 else date(fiscal_year + y, m, d))
        for y, m, d in _SCHEDULES[tax]
    )


def split_amount(total: int, periods: int) -> list[int]:
    """Each 期 a multiple of 100 yen; the remainder goes on the first 期, as bills do."""
    if periods == 1:
        return [total]
    rest = total // periods // 100 * 100
    return [total - rest * (periods - 1)] + [rest] * (periods - 1)


class PaymentBook:
    """Creates `Installment`s for one town; ids are `{town}-{R|P|L|N}{year}-{bill}-{期}`."""

    def __init__(self, town_code: str, as_of: date, rng: random.Random) -> None:
        self.town_code = town_code
        self.as_of = as_of
        self.rng = rng
        self._habits: dict[str, Habit] = {}
        self._bill = 0
        self.installments: list[Installment] = []

    def habit(self, taxpayer_id: str) -> Habit:
        habit = self._habits.get(taxpayer_id)
        if habit is None:
            x = self.rng.random()
            habit = (
                Habit.ON_TIME
                if x < 0.865
                else Habit.LATE
                if x < 0.945
                else Habit.PREPAY
                if x < 0.975
                else Habit.ARREARS
            )
            self._habits[taxpayer_id] = habit
        return habit

    def bill(
        self,
        taxpayer_id: str,
        tax: TaxKind,
        fiscal_year: int,
        total: int,
        vehicle_id: str = "",
    ) -> None:
        if total <= 0:
            return
        rng, as_of, town = self.rng, self.as_of, self.town_code
        self._bill += 1
        prefix = f"{town}-{_KIND_LETTER[tax]}{fiscal_year}-{self._bill:07d}"
        habit = self.habit(taxpayer_id)
        dues = due_dates(tax, fiscal_year)
        amounts = split_amount(total, len(dues))
        if habit is Habit.ON_TIME:  # the common case, kept lean for the benchmark sizes
            append = self.installments.append
            for period, (due, amount) in enumerate(zip(dues, amounts, strict=True), start=1):
                done = due <= as_of
                append(
                    Installment(
                        f"{prefix}-{period}",
                        town,
                        taxpayer_id,
                        tax,
                        fiscal_year,
                        period,
                        due,
                        amount,
                        amount if done else 0,
                        due if done else None,
                        vehicle_id,
                    )
                )
            return
        first_due = dues[0]
        for period, (due, amount) in enumerate(zip(dues, amounts, strict=True), start=1):
            paid, paid_on = 0, None
            if habit is Habit.PREPAY and first_due <= as_of:
                paid, paid_on = amount, first_due - timedelta(days=rng.randrange(0, 5))
            elif due <= as_of:
                if habit is Habit.LATE:
                    day = due + timedelta(days=rng.randrange(1, 75))
                    if day <= as_of:
                        paid, paid_on = amount, day
                elif rng.random() < 0.35:  # in arrears, but pays some 期
                    day = due + timedelta(days=rng.randrange(0, 200))
                    if day <= as_of:
                        paid_on = day
                        paid = amount if rng.random() < 0.7 else amount // 2 // 100 * 100
            self.installments.append(
                Installment(
                    id=f"{prefix}-{period}",
                    town_code=self.town_code,
                    taxpayer_id=taxpayer_id,
                    tax=tax,
                    fiscal_year=fiscal_year,
                    period=period,
                    due=due,
                    amount=amount,
                    paid=paid,
                    paid_on=paid_on if paid else None,
                    vehicle_id=vehicle_id,
                )
            )
