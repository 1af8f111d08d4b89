"""The records a decision reads, indexed: one town's residents, households, 支援措置,
tax and insurance — as a box holds them after opening the town.

Why a separate view: decisions run once per request at the counter and must not scan a
town of 14,000 people each time, and tests must be able to build a tiny town by hand.
`TownData` is read-only; a new sync gives a new `TownData` (`with_blocks` for the small
支援措置 document that arrives first).

`synthetic` is declared by whoever builds the view: drill mode issues only from synthetic
residents, and real mode never does (the model itself has no such marker).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TypeVar

from shared.model import (
    Household,
    Installment,
    NhiMember,
    Resident,
    SupportBlock,
    TaxAssessment,
    Town,
    TownExport,
    Vehicle,
)

K = TypeVar("K")
V = TypeVar("V")


class ShardedMap(Mapping[K, V]):
    """A read-only map whose records sit in the shard of a person (the registry places a
    person's tax, insurance and vehicles by a hash of their id): a lookup reads only that
    person's shard, once, so the first request at a counter does not wait for every
    record of a town of 14,000. Iterating reads every shard. With `shard_of=None` the
    key says nothing about the shard, and the first access reads them all."""

    def __init__(
        self,
        shards: int,
        load: Callable[[int], dict[K, V]],
        person_of: Callable[[K], str] | None = None,
        shard_of: Callable[[str], int] | None = None,
    ) -> None:
        self._shards = shards
        self._load = load
        self._person_of = person_of
        self._shard_of = shard_of
        self._loaded: dict[int, dict[K, V]] = {}

    def _shard(self, index: int) -> dict[K, V]:
        if index not in self._loaded:
            self._loaded[index] = self._load(index)
        return self._loaded[index]

    def of_person(self, person_id: str) -> Mapping[K, V]:
        """The records of the shard holding this person (theirs among them)."""
        if self._shard_of is None:
            return self
        return self._shard(self._shard_of(person_id))

    def __getitem__(self, key: K) -> V:
        if self._shard_of is not None and self._person_of is not None:
            return self._shard(self._shard_of(self._person_of(key)))[key]
        for index in range(self._shards):
            shard = self._shard(index)
            if key in shard:
                return shard[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[K]:
        for index in range(self._shards):
            yield from self._shard(index)

    def __len__(self) -> int:
        return sum(len(self._shard(index)) for index in range(self._shards))


class LookupMap(Mapping[K, V]):
    """A read-only map read record by record, for records whose id names their person
    (a 課税 record is `resident/year`): a lookup decodes that one record, not its shard.
    Iterating reads the whole table once."""

    def __init__(
        self,
        keys_of: Callable[[str], list[K]],
        get: Callable[[K], V | None],
        load_all: Callable[[], dict[K, V]],
    ) -> None:
        self._keys_of = keys_of
        self._get = get
        self._load_all = load_all
        self._cache: dict[K, V | None] = {}
        self._all: dict[K, V] | None = None

    def _every(self) -> dict[K, V]:
        if self._all is None:
            self._all = self._load_all()
        return self._all

    def of_person(self, person_id: str) -> Mapping[K, V]:
        """This person's records (only theirs)."""
        found = {}
        for key in self._keys_of(person_id):
            value = self.get(key)
            if value is not None:
                found[key] = value
        return found

    def __getitem__(self, key: K) -> V:
        if self._all is not None:
            return self._all[key]
        if key not in self._cache:
            self._cache[key] = self._get(key)
        value = self._cache[key]
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[K]:
        return iter(self._every())

    def __len__(self) -> int:
        return len(self._every())


def _of_person(records: Mapping[K, V], person_id: str) -> Mapping[K, V]:
    if isinstance(records, (ShardedMap, LookupMap)):
        return records.of_person(person_id)
    return records


@dataclass(frozen=True)
class TownData:
    town: Town
    residents: dict[str, Resident]
    households: dict[str, Household]
    blocks: tuple[SupportBlock, ...]
    # Mappings, not dicts: a box's counter reads them shard by shard (`ShardedMap`).
    assessments: Mapping[tuple[str, int], TaxAssessment] = field(default_factory=dict)
    installments: Mapping[str, tuple[Installment, ...]] = field(default_factory=dict)
    vehicles: Mapping[str, Vehicle] = field(default_factory=dict)
    nhi: Mapping[str, NhiMember] = field(default_factory=dict)
    synthetic: bool = False
    _members: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _by_vehicle: Mapping[str, tuple[Installment, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        town: Town,
        residents: Iterable[Resident],
        households: Iterable[Household],
        blocks: Iterable[SupportBlock] = (),
        assessments: Iterable[TaxAssessment] = (),
        installments: Iterable[Installment] = (),
        vehicles: Iterable[Vehicle] = (),
        nhi: Iterable[NhiMember] = (),
        *,
        synthetic: bool = False,
    ) -> TownData:
        people = {r.id: r for r in residents}
        members: dict[str, list[str]] = defaultdict(list)
        for person in people.values():
            members[person.household_id].append(person.id)
        by_taxpayer: dict[str, list[Installment]] = defaultdict(list)
        by_vehicle: dict[str, list[Installment]] = defaultdict(list)
        for inst in installments:
            by_taxpayer[inst.taxpayer_id].append(inst)
            if inst.vehicle_id:
                by_vehicle[inst.vehicle_id].append(inst)
        return cls(
            town=town,
            residents=people,
            households={h.id: h for h in households},
            blocks=tuple(blocks),
            assessments={(a.resident_id, a.fiscal_year): a for a in assessments},
            installments={k: tuple(v) for k, v in by_taxpayer.items()},
            vehicles={v.id: v for v in vehicles},
            nhi={m.resident_id: m for m in nhi},
            synthetic=synthetic,
            _members={k: tuple(v) for k, v in members.items()},
            _by_vehicle={k: tuple(v) for k, v in by_vehicle.items()},
        )

    @classmethod
    def from_export(cls, export: TownExport, *, synthetic: bool = False) -> TownData:
        return cls.build(
            export.town,
            export.residents,
            export.households,
            export.support_blocks,
            export.tax_assessments,
            export.installments,
            export.vehicles,
            export.nhi_members,
            synthetic=synthetic,
        )

    def with_blocks(self, blocks: Iterable[SupportBlock]) -> TownData:
        """The same registry with a newer 支援措置 document."""
        return replace(self, blocks=tuple(blocks))

    def members_of(self, household_id: str, *, living_only: bool = True) -> list[Resident]:
        people = (self.residents[i] for i in self._members.get(household_id, ()))
        return [p for p in people if not (living_only and p.is_removed)]

    def active_blocks(self, resident_id: str, day: date) -> list[SupportBlock]:
        return [b for b in self.blocks if resident_id in b.protected_ids and b.active_on(day)]

    def assessment_years(self, resident_id: str) -> set[int]:
        """The fiscal years with an assessment for this resident."""
        return {fy for (rid, fy) in _of_person(self.assessments, resident_id) if rid == resident_id}

    def vehicles_of(self, owner_id: str) -> list[Vehicle]:
        return [v for v in _of_person(self.vehicles, owner_id).values() if v.owner_id == owner_id]

    def installments_of(self, taxpayer_id: str) -> Sequence[Installment]:
        return self.installments.get(taxpayer_id, ())

    def vehicle_installments(self, vehicle_id: str) -> Sequence[Installment]:
        """Every 期 billed for this vehicle, whoever owned it then."""
        return self._by_vehicle.get(vehicle_id, ())
