"""軽自動車 and the 軽自動車税 (種別割) billed on them: rural households have several.

Most adults drive a kei car; farm households add a 軽トラ and an 農耕用 tractor (小型特殊),
some people ride a 原付. Tax rates are the statutory ones: the 2015 rate for newer kei
cars, the old rate for earlier ones, the 重課 rate after 13 years. The tax is billed in
one 期 due 31 May to whoever owned the vehicle on 1 April; a vehicle whose tax is unpaid
for any year cannot get the free 継続検査用 certificate.
"""

from __future__ import annotations

import random
from datetime import date

from shared.model import TaxKind, Vehicle

from .numbers import age_on
from .payments import PaymentBook
from .population import HouseholdDraft, Occupation

_HIRAGANA = "あいうえかきくけこさすせそたちつてとなにぬねのはひふほまみむめもやゆよらりるろ"

# (vehicle_kind, 標識 class number or "" for a municipal plate, model codes, rates)
# rates: (newer, older, 13 years and over)
_KINDS: dict[str, tuple[str, str, tuple[str, ...], tuple[int, int, int]]] = {
    "car": (
        "軽四輪乗用（自家用）",
        "580",
        ("HA36S", "MH55S", "LA650S", "JF3", "B44A"),
        (10_800, 7_200, 12_900),
    ),
    "truck": (
        "軽四輪貨物（自家用）",
        "480",
        ("DA16T", "S500P", "DA17V", "S321V"),
        (5_000, 4_000, 6_000),
    ),
    "moped": ("原動機付自転車（50cc以下）", "", ("AF68", "CA4BA"), (2_000, 2_000, 2_000)),
    "tractor": (
        "小型特殊自動車（農耕作業用）",
        "",
        ("KL33", "YT225", "GS23"),
        (2_000, 2_000, 2_000),
    ),
}


def _number(rng: random.Random) -> str:
    n = rng.randrange(1, 10000)
    if n >= 1000:
        return f"{n // 100}-{n % 100:02d}"
    return f"{'・' * (4 - len(str(n)))}{n}"


class VehicleBuilder:
    def __init__(
        self,
        town_code: str,
        town_name: str,
        as_of: date,
        rng: random.Random,
        book: PaymentBook,
    ) -> None:
        self.town_code = town_code
        self.town_name = town_name
        self.as_of = as_of
        self.rng = rng
        self.book = book
        self.vehicles: list[Vehicle] = []
        self._plates: set[str] = set()

    def household(self, draft: HouseholdDraft) -> None:
        rng = self.rng
        farm = any(p.occupation is Occupation.FARMER or p.side_farm for p in draft.members)
        for person in draft.members:
            r = person.resident
            if r.removal is not None:
                continue
            age = age_on(r.birth_date, self.as_of)
            if age < 16:
                continue
            if 18 <= age <= 85 and rng.random() < (0.55 if age < 70 else 0.35):
                self._add(r.id, "car", r.became_resident)
            elif (age < 25 and rng.random() < 0.15) or (
                r.foreign is not None and rng.random() < 0.25
            ):
                self._add(r.id, "moped", r.became_resident)
            if farm and r.relationship == "世帯主":
                if rng.random() < 0.8:
                    self._add(r.id, "truck", r.became_resident)
                if rng.random() < 0.45:
                    self._add(r.id, "tractor", r.became_resident)

    def _plate(self, kind: str) -> str:
        rng = self.rng
        while True:
            class_number = _KINDS[kind][1]
            if class_number:
                plate = (
                    f"新潟 {class_number[0]}{class_number[1]}{rng.randrange(10)} "
                    f"{rng.choice(_HIRAGANA)} {_number(rng)}"
                )
            else:
                plate = f"{self.town_name} {rng.choice('あいう')} {rng.randrange(1, 10000)}"
            if plate not in self._plates:
                self._plates.add(plate)
                return plate

    def _add(self, owner_id: str, kind: str, owner_since: date) -> None:
        rng = self.rng
        label, _, models, rates = _KINDS[kind]
        x = rng.random()
        rate = rates[0] if x < 0.6 else rates[1] if x < 0.85 else rates[2]
        vehicle = Vehicle(
            id=f"{self.town_code}-V{len(self.vehicles) + 1:07d}",
            town_code=self.town_code,
            owner_id=owner_id,
            plate=self._plate(kind),
            vehicle_kind=label,
            chassis_number=f"{rng.choice(models)}-{rng.randrange(100000, 999999)}",
            annual_tax=rate,
        )
        self.vehicles.append(vehicle)
        # Owned for a while: billed for each of the last three years it was here on 1 April.
        acquired_year = self.as_of.year - (0 if rng.random() < 0.1 else 3)
        for fiscal_year in range(self.as_of.year - 2, self.as_of.year + 1):
            april1 = date(fiscal_year, 4, 1)
            if fiscal_year < acquired_year or owner_since > april1 or april1 > self.as_of:
                continue
            self.book.bill(
                owner_id, TaxKind.LIGHT_VEHICLE, fiscal_year, rate, vehicle_id=vehicle.id
            )
