"""An open town on a box: its registry documents in memory and its search index.

Everything here is plaintext and lives only in memory (BRIEF §3: no plaintext on a box's
disk): a town is opened from its sealed replica when one of its clerks logs in, and is
gone when the process ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from shared import model
from shared.gcpause import gc_paused
from shared.registry import TownRegistry
from shared.search import HOUSEHOLD_FIELDS, RESIDENT_FIELDS, SearchIndex
from shared.wareki import to_seireki, to_wareki


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One search result as the counter screen shows it."""

    resident_id: str
    household_id: str
    name: str
    kana: str
    birth: str
    sex: str
    relationship: str
    address: str
    removed: str


class OpenTown:
    """A town's registry and its search index, built when the town opens.

    The index is built from the registry's flat records, reading only the fields it
    keys on: no Resident or Household is built at opening. A search materialises the
    records of the page it shows (`search`), and the counter the tables it needs at its
    first request (`edge.worker`). `timings` says where the opening spent its time:
    `read_s` (the CRDT documents to records) and `index_s` (keys, then SQLite)."""

    def __init__(self, code: str, name: str, as_of: str, registry: TownRegistry) -> None:
        self.code = code
        self.name = name
        self.as_of = as_of
        self.registry = registry
        with gc_paused():  # ~2×10⁵ records that all live as long as the town is open
            self.index = SearchIndex(code)
            start = time.perf_counter()
            fields = RESIDENT_FIELDS, HOUSEHOLD_FIELDS
            pairs = list(registry.resident_records_with_households(*fields))
            read = time.perf_counter()
            self.index.build_records(pairs)
            self.timings = {"read_s": read - start, "index_s": time.perf_counter() - read}

    @property
    def as_of_label(self) -> str:
        """The export time as a clerk reads it: 令和8年11月26日 2時00分."""
        try:
            moment = datetime.fromisoformat(self.as_of)
        except ValueError:
            return self.as_of or "不明"
        return f"{to_wareki(moment.date())} {moment.hour}時{moment.minute:02d}分"

    def search(self, query: str, limit: int = 20) -> list[ResultRow]:
        rows = []
        for hit in self.index.search(query, limit=limit, include_removed=True):
            resident = self.registry.get("residents", hit.resident_id, anchor=hit.household_id)
            household = self.registry.get("households", hit.household_id)
            if resident is None or household is None:
                continue
            rows.append(_row(resident, household))
        return rows


def _birth(resident: model.Resident) -> str:
    # Foreign residents' birth dates are written in 西暦 (BRIEF §4).
    if resident.kind is model.ResidentKind.FOREIGN:
        return to_seireki(resident.birth_date)
    return to_wareki(resident.birth_date)


def _row(resident: model.Resident, household: model.Household) -> ResultRow:
    removed = ""
    if resident.removal is not None:
        removed = f"{resident.removal.reason.value}（{to_wareki(resident.removal.date)}）"
    return ResultRow(
        resident_id=resident.id,
        household_id=household.id,
        name=resident.name,
        kana=resident.kana if resident.kana_certified else f"{resident.kana}（未確認）",
        birth=_birth(resident),
        sex=resident.sex.value,
        relationship=resident.relationship,
        address=f"{household.district}{household.address}",
        removed=removed,
    )
