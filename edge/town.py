"""An open town on a box: its registry documents in memory and its search index.

Everything here is plaintext and lives only in memory (BRIEF §3: no plaintext on a box's
disk): a town is opened from its sealed replica when one of its clerks logs in, and is
gone when the process ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared import model
from shared.registry import TownRegistry
from shared.search import SearchIndex
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
    def __init__(self, code: str, name: str, as_of: str, registry: TownRegistry) -> None:
        self.code = code
        self.name = name
        self.as_of = as_of
        self.registry = registry
        self.index = SearchIndex(code)
        self.index.build(registry.residents_with_households())

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

