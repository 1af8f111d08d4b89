"""The next day's export: what a day at the counter changes in a town's core system.

`next_day(exports, seed, fraction)` returns new `TownExport`s in which about `fraction` of
each town's living residents were touched: moves within the town (a household's district
and address), フリガナ certified, deaths and 転出 (the record becomes a 除票), tax
installments paid, and one new 支援措置 block per town. The input is not modified.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from datetime import date, timedelta

from shared import model

from .towns import residential_districts


def next_day(
    exports: list[model.TownExport], seed: int, fraction: float = 0.01
) -> list[model.TownExport]:
    return [
        _town_next_day(e, random.Random(f"{seed}:{e.town.code}:daily"), fraction)
        for e in exports
    ]


def _town_next_day(
    export: model.TownExport, rng: random.Random, fraction: float
) -> model.TownExport:
    out = copy.copy(export)
    day = _next_date(export.exported_at)
    living = [r for r in export.residents if r.removal is None]
    touched = rng.sample(living, max(1, int(len(living) * fraction)))
    residents = {r.id: r for r in export.residents}
    households = {h.id: h for h in export.households}
    districts = residential_districts(export.town.code)
    for person in touched:
        action = rng.random()
        if action < 0.4:  # the household moves within the town
            home = households[person.household_id]
            district = rng.choice(districts)
            households[home.id] = dataclasses.replace(
                home,
                district=district.name,
                postal_code=district.postal_code,
                address=f"{rng.randint(1, 2999)}番地",
            )
        elif action < 0.7:  # フリガナ confirmed (legal item since 2025-05-26)
            residents[person.id] = dataclasses.replace(person, kana_certified=True)
        elif action < 0.85 and person.relationship != "世帯主":
            reason = rng.choice([model.RemovalReason.DIED, model.RemovalReason.MOVED_OUT])
            destination = "新潟県新潟市中央区" if reason is model.RemovalReason.MOVED_OUT else ""
            residents[person.id] = dataclasses.replace(
                person, removal=model.Removal(reason, day, destination)
            )
        else:
            residents[person.id] = dataclasses.replace(person, notified=day)
    out.residents = list(residents.values())
    out.households = list(households.values())
    out.installments = _pay_some(export.installments, rng, fraction, day)
    out.support_blocks = [*export.support_blocks, _new_block(export, rng, living, day)]
    out.exported_at = f"{day.isoformat()}T02:00:00+09:00"
    return out


def _next_date(exported_at: str) -> date:
    return date.fromisoformat(exported_at[:10]) + timedelta(days=1)


def _pay_some(
    installments: list[model.Installment], rng: random.Random, fraction: float, day: date
) -> list[model.Installment]:
    result = []
    for item in installments:
        if item.outstanding > 0 and item.due <= day and rng.random() < fraction:
            item = dataclasses.replace(item, paid=item.amount, paid_on=day)
        result.append(item)
    return result


def _new_block(
    export: model.TownExport,
    rng: random.Random,
    living: list[model.Resident],
    day: date,
) -> model.SupportBlock:
    person = rng.choice(living)
    serial = len(export.support_blocks) + 1
    return model.SupportBlock(
        id=f"{export.town.code}-B{serial + 5000:04d}",
        town_code=export.town.code,
        protected_ids=(person.id,),
        household_id="",
        adversary_name="加害　太郎",
        adversary_kana="カガイ　タロウ",
        adversary_birth_date=date(1980, 1, 1),
        start=day,
        end=day + timedelta(days=364),
    )
