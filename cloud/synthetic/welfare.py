"""避難行動要支援者名簿 entries: elderly people needing care, disabled people, the bedridden.

The list comes from welfare data (介護保険, 障害者手帳), not from the registry, so it is
keyed by resident id but holds its own reason and contact. People living alone give a
relative elsewhere as contact; most have consented to the list being shared in normal
times, some have not (their entry may go to responders only after the mayor's decision).
"""

from __future__ import annotations

import random
from datetime import date

from shared.model import SupportNeed

from .names import SPACE
from .numbers import age_on
from .population import HouseholdDraft

_CARE = ("要介護3", "要介護4", "要介護5", "要介護3（認知症）")
_DISABILITY = (
    "身体障害者手帳1級（肢体不自由）",
    "身体障害者手帳2級（視覚障害）",
    "身体障害者手帳1級（呼吸器・在宅酸素）",
    "療育手帳A",
    "精神障害者保健福祉手帳1級",
    "難病（人工呼吸器使用）",
    "身体障害者手帳2級（聴覚障害）",
)
_RELATIVES = ("長男", "長女", "次男", "次女", "甥", "姪")


class WelfareBuilder:
    def __init__(self, town_code: str, area_code: str, as_of: date, rng: random.Random) -> None:
        self.town_code = town_code
        self.area_code = area_code
        self.as_of = as_of
        self.rng = rng
        self.needs: list[SupportNeed] = []

    def _phone(self, mobile: bool) -> str:
        rng = self.rng
        if mobile:
            return f"090-0{rng.randrange(100, 1000)}-{rng.randrange(10000):04d}"
        return f"{self.area_code}-00-{rng.randrange(10000):04d}"

    def household(self, draft: HouseholdDraft) -> None:
        rng = self.rng
        living = [p for p in draft.members if p.resident.removal is None]
        for person in living:
            r = person.resident
            age = age_on(r.birth_date, self.as_of)
            if age >= 75:
                chance = 0.12 if len(living) == 1 else 0.08
            elif age >= 65:
                chance = 0.03
            else:
                chance = 0.006
            if rng.random() >= chance:
                continue
            if age >= 65 and rng.random() < 0.7:
                reason = rng.choice(_CARE)
                if len(living) == 1:
                    reason += "・ひとり暮らし"
            else:
                reason = rng.choice(_DISABILITY)
            others = [
                p
                for p in living
                if p is not person and age_on(p.resident.birth_date, self.as_of) >= 18
            ]
            if others:
                relative = others[0].resident
                contact = (
                    f"{self._phone(rng.random() < 0.5)}（{relative.relationship} {relative.name}）"
                )
            else:
                surname = r.name.split(SPACE)[0]
                contact = (
                    f"{self._phone(True)}（{rng.choice(_RELATIVES)}"
                    f" {surname}{SPACE}{rng.choice(('健一', '恵子', '誠', '京子'))}・市外）"
                )
            self.needs.append(
                SupportNeed(
                    resident_id=r.id,
                    town_code=self.town_code,
                    reason=reason,
                    contact=contact,
                    consented=rng.random() < 0.75,
                )
            )
