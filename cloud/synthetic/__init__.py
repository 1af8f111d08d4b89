"""The synthetic federation: a stand-in for the three towns' core systems.

`generate(seed)` returns one `TownExport` per town — 聖籠町 15307 (≈14,000 residents),
出雲崎町 15405 (≈4,800) and 関川村 15581 (≈6,200) — shaped like a real register of a rural
Niigata town: an old population, three-generation households next to elderly people living
alone, farmers, a few foreign trainees, 除票, 支援措置, arrears, variant characters in names.
Nothing in it is real except the towns' names, codes, districts, postal codes and town-hall
addresses.

Determinism: the same seed (and `as_of`, and overrides) gives equal objects. Every draw
comes from a `random.Random` seeded with a string naming the seed, the town and the
concern ("1:15307:tax"), or from a Faker instance seeded the same way — never from global
random state or the clock. Separate streams per concern keep one part's output stable when
another part changes.

Identifiers (all ASCII):

    Resident.id (宛名番号)         town code + 8-digit serial      1530700000123
    Household.id (世帯番号)        town code + 7-digit serial      153070000042
    juminhyo_code (住民票コード)   11 digits, random, check digit  federation-unique
    my_number (個人番号)           12 digits, random, check digit  federation-unique
    SupportBlock.id               {town}-B{4 digits}               15307-B0001
    Vehicle.id                    {town}-V{7 digits}               15307-V0000012
    Installment.id                {town}-{R|P|L|N}{year}-{bill}-{期} 15307-R2026-0000031-2
    NhiMember symbol/number       district number (3 digits) / household (7 digits),
                                  branch 2 digits per member
    Clerk.login_id                {seiro|izumozaki|sekikawa}.{surname}[n]

Fee keys of `Town.fees` are listed in `cloud.synthetic.towns.FEE_KINDS`.
"""

from __future__ import annotations

import random
from datetime import date

from faker import Faker

from shared.gcpause import gc_paused
from shared.model import District, TownExport

from .blocks import build_blocks
from .clerks import build_clerks
from .insurance import InsuranceBuilder
from .names import TOWN_GAIJI, NamePools
from .numbers import NumberAllocator
from .payments import PaymentBook
from .population import HouseholdDraft, TownPopulation
from .tax import TaxBuilder
from .towns import FEE_KINDS, PREFECTURE, SPECS, TownSpec, build_town, residential_districts
from .vehicles import VehicleBuilder
from .welfare import WelfareBuilder

__all__ = ["DEFAULT_AS_OF", "FEE_KINDS", "TOWN_CODES", "generate"]

DEFAULT_AS_OF = date(2026, 11, 26)
TOWN_CODES: tuple[str, ...] = tuple(spec.code for spec in SPECS)


def _rng(seed: int, code: str, concern: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
    return random.Random(f"{seed}:{code}:{concern}")


def _faker(seed: int, code: str, concern: str) -> Faker:
    fake = Faker("ja_JP")
    fake.seed_instance(f"{seed}:{code}:{concern}")
    return fake


def generate(
    seed: int,
    residents_override: dict[str, int] | None = None,
    as_of: date = DEFAULT_AS_OF,
) -> list[TownExport]:
    """One `TownExport` per town, in town-code order.

    `residents_override` maps a town code to the number of living residents to generate
    instead of the town's real size (benchmarks scale 聖籠町 to 500,000).
    """
    overrides = dict(residents_override or {})
    unknown = set(overrides) - set(TOWN_CODES)
    if unknown:
        raise ValueError(f"unknown town code(s): {', '.join(sorted(unknown))}")
    if any(n < 1 for n in overrides.values()):
        raise ValueError("residents_override values must be positive")
    # Millions of small acyclic records that all survive (shared.gcpause).
    with gc_paused():
        return _generate(seed, overrides, as_of)


def _generate(seed: int, overrides: dict[str, int], as_of: date) -> list[TownExport]:
    names_fake = Faker("ja_JP")
    names_fake.seed_instance(seed)
    pools = NamePools(names_fake)
    numbers = NumberAllocator()

    built: list[tuple[TownSpec, list[District], list[HouseholdDraft]]] = []
    for spec in SPECS:
        districts = residential_districts(spec.code)
        target = overrides.get(spec.code, spec.residents)
        population = TownPopulation(
            spec, districts, target, as_of, _rng(seed, spec.code, "population"), pools, numbers
        )
        built.append((spec, districts, population.build()))

    exports: list[TownExport] = []
    for index, (spec, districts, drafts) in enumerate(built):
        partner_drafts = built[(index + 1) % len(built)][2]
        exports.append(_export(seed, spec, districts, drafts, partner_drafts, pools, as_of))
    return exports


def _export(
    seed: int,
    spec: TownSpec,
    districts: list[District],
    drafts: list[HouseholdDraft],
    partner_drafts: list[HouseholdDraft],
    pools: NamePools,
    as_of: date,
) -> TownExport:
    code = spec.code
    town, officials = build_town(spec, _rng(seed, code, "town"), pools, as_of)
    book = PaymentBook(code, as_of, _rng(seed, code, "payments"))
    taxes = TaxBuilder(
        code,
        f"{PREFECTURE}{spec.county}{spec.name}",
        [d.name for d in districts],
        as_of,
        _rng(seed, code, "tax"),
        book,
    )
    vehicles = VehicleBuilder(code, spec.name, as_of, _rng(seed, code, "vehicles"), book)
    district_numbers = {d.name: n for n, d in enumerate(districts, start=1)}
    insurance = InsuranceBuilder(
        code, district_numbers, as_of, _rng(seed, code, "nhi"), book, taxes.income
    )
    welfare = WelfareBuilder(code, spec.area_code, as_of, _rng(seed, code, "welfare"))
    for draft in drafts:
        taxes.household(draft)
        taxes.property_tax(draft)
        vehicles.household(draft)
        insurance.household(draft)
        welfare.household(draft)
    partner_residents = [p.resident for d in partner_drafts for p in d.members]
    blocks = build_blocks(
        code,
        drafts,
        as_of,
        _rng(seed, code, "blocks"),
        _faker(seed, code, "blocks"),
        partner_residents,
    )
    return TownExport(
        town=town,
        households=[d.household for d in drafts],
        residents=[p.resident for d in drafts for p in d.members],
        support_blocks=blocks,
        tax_assessments=taxes.assessments,
        vehicles=vehicles.vehicles,
        installments=book.installments,
        nhi_members=insurance.members,
        support_needs=welfare.needs,
        clerks=build_clerks(spec, _faker(seed, code, "clerks"), officials),
        gaiji=[g.mapping for g in TOWN_GAIJI.get(code, ())],
        exported_at=f"{as_of.isoformat()}T02:00:00+09:00",
    )
