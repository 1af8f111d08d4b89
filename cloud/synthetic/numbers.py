"""Federation-unique 住民票コード and 個人番号 with valid check digits, and date helpers.

Both numbers are random (as the real ones are) rather than sequential, so nothing in
Renkei can lean on their order; one allocator is shared by the three towns so a number is
unique across the federation, as it is nationally.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from shared.model import juminhyo_code_check_digit, my_number_check_digit


class NumberAllocator:
    def __init__(self) -> None:
        self._juminhyo: set[str] = set()
        self._my_number: set[str] = set()

    def juminhyo_code(self, rng: random.Random) -> str:
        while True:
            body = f"{rng.randrange(10**10):010d}"
            code = body + str(juminhyo_code_check_digit(body))
            if code not in self._juminhyo:
                self._juminhyo.add(code)
                return code

    def my_number(self, rng: random.Random) -> str:
        while True:
            body = f"{rng.randrange(10**11):011d}"
            number = body + str(my_number_check_digit(body))
            if number not in self._my_number:
                self._my_number.add(number)
                return number


def years_before(day: date, years: float) -> date:
    """`day` minus a fractional number of years, to the day (ages, not anniversaries)."""
    return day - timedelta(days=int(years * 365.2425))


def age_on(birth: date, day: date) -> int:
    """Age in completed years (a birthday on 29 February counts on 1 March)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def next_business_day(day: date) -> date:
    """A 納期限 falling on a weekend moves to the Monday (地方税法 §20の5; public holidays
    are ignored in the synthetic calendar)."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)
