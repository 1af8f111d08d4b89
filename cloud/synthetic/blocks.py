"""支援措置 (DV / stalking protection) on people and households.

Blocks are few and land where they do in life: mostly women who moved in recently, alone
or with their children (a household block lists every member), one on a 除票 (she moved
on, and the old record must stay hidden), a couple that expired and one about to. In each
town one 相手方 is a real resident of a partner town — same name, kana and birth date —
because the person a block is aimed at may walk into any counter of the federation.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from faker import Faker

from shared.model import Resident, Sex, SupportBlock

from .names import full_name
from .numbers import add_years, age_on, years_before
from .population import HouseholdDraft


def _window(rng: random.Random, as_of: date, earliest: date, expired: bool) -> tuple[date, date]:
    """One year of protection, renewed yearly: covering `as_of` unless `expired`."""
    if expired:
        start = as_of - timedelta(days=rng.randrange(420, 1100))
    else:
        start = as_of - timedelta(days=rng.randrange(0, 360))
    start = max(start, earliest) if not expired else start
    return start, add_years(start, 1) - timedelta(days=1)


def build_blocks(
    town_code: str,
    drafts: list[HouseholdDraft],
    as_of: date,
    rng: random.Random,
    fake: Faker,
    partner_residents: list[Resident],
) -> list[SupportBlock]:
    living_target = sum(1 for d in drafts for p in d.members if p.resident.removal is None)
    wanted = max(3, living_target // 2500)
    candidates: list[tuple[HouseholdDraft, Resident]] = []
    removed: list[tuple[HouseholdDraft, Resident]] = []
    for draft in drafts:
        for person in draft.members:
            r = person.resident
            if r.sex is not Sex.FEMALE or not 20 <= age_on(r.birth_date, as_of) <= 55:
                continue
            if r.removal is not None:
                if r.removal.reason.value == "転出":
                    removed.append((draft, r))
            elif r.relationship == "世帯主" or r.became_resident > as_of - timedelta(days=1500):
                candidates.append((draft, r))
    rng.shuffle(candidates)
    # The first block protects a whole household: a mother who is 世帯主 with her children.
    families = [
        (d, r)
        for d, r in candidates
        if r.relationship == "世帯主" and sum(p.resident.removal is None for p in d.members) > 1
    ]
    picks = families[:1] + [c for c in candidates if c not in families[:1]][: wanted + 1]
    partner_men = [
        r
        for r in partner_residents
        if r.removal is None and r.sex is Sex.MALE and 25 <= age_on(r.birth_date, as_of) <= 60
    ]
    blocks: list[SupportBlock] = []

    def adversary(protected: Resident) -> tuple[str, str, date | None]:
        surname = fake.last_name_pair()
        given = fake.first_name_male_pair()
        name, kana = full_name(surname, given)
        if rng.random() < 0.1:
            return name, kana, None  # birth date not known to the town
        born = years_before(protected.birth_date, rng.uniform(-3, 8))
        return name, kana, born

    for n, (draft, protected) in enumerate(picks):
        household_block = n == 0 and bool(families)
        members = [p.resident for p in draft.members if p.resident.removal is None]
        ids = tuple(r.id for r in members) if household_block else (protected.id,)
        expired = n >= wanted
        start, end = _window(rng, as_of, protected.became_resident, expired)
        if n == 1:  # renewal pending: ends within days
            start = add_years(as_of + timedelta(days=rng.randrange(1, 6)), -1)
            end = add_years(start, 1) - timedelta(days=1)
        born: date | None
        if n == 2 and partner_men:
            partner = rng.choice(partner_men)
            name, kana, born = partner.name, partner.kana, partner.birth_date
        else:
            name, kana, born = adversary(protected)
        blocks.append(
            SupportBlock(
                id=f"{town_code}-B{len(blocks) + 1:04d}",
                town_code=town_code,
                protected_ids=ids,
                household_id=draft.household.id if household_block else "",
                adversary_name=name,
                adversary_kana=kana,
                adversary_birth_date=born,
                start=start,
                end=end,
            )
        )
    if removed:
        draft, protected = rng.choice(removed)
        name, kana, born = adversary(protected)
        start, end = _window(rng, as_of, as_of - timedelta(days=360), False)
        blocks.append(
            SupportBlock(
                id=f"{town_code}-B{len(blocks) + 1:04d}",
                town_code=town_code,
                protected_ids=(protected.id,),
                household_id="",
                adversary_name=name,
                adversary_kana=kana,
                adversary_birth_date=born,
                start=start,
                end=end,
            )
        )
    return blocks
