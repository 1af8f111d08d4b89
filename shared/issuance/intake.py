"""The intake seam: reports and applications taken but not yet processed.

Why here: every issuance must check whether a change (異動) or death report about the
person is waiting — a certificate printed from the registry while a 死亡届 sits in the
intake queue is wrong the moment it leaves the counter. The application-intake document
is another subsystem's; decisions only need this one question answered, so the seam is
one method:

    pending_for(town_code, resident_id) -> [PendingReport]

`MemoryIntake` is the in-memory implementation; `StoredIntake` keeps reports through the
storage seam (keys `("intake", town, report id)`, JSON values) for the reconciliation
command. Only `CHANGE` and `DEATH` reports hold issuance back; `APPLICATION` entries are
requests taken as intake-only, to be answered by post later.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.storage import Storage

from .codec import decode, encode


class ReportKind(enum.StrEnum):
    CHANGE = "異動届"
    DEATH = "死亡届"
    APPLICATION = "交付請求（後日郵送）"
    OTHER = "その他"


BLOCKING_REPORTS = frozenset({ReportKind.CHANGE, ReportKind.DEATH})


@dataclass(frozen=True, slots=True)
class PendingReport:
    id: str
    town_code: str
    resident_id: str
    kind: ReportKind
    received_at: datetime
    summary: str = ""  # e.g. 転居届（大字藤寄へ）; shown in the reconciliation report

    @property
    def blocks_issuance(self) -> bool:
        return self.kind in BLOCKING_REPORTS


class Intake(Protocol):
    def pending_for(self, town_code: str, resident_id: str) -> Sequence[PendingReport]:
        """Reports about this person that intake has taken and nobody has processed."""
        ...


class NoIntake:
    """A town with an empty queue (or a test that does not care)."""

    def pending_for(self, town_code: str, resident_id: str) -> Sequence[PendingReport]:
        return ()


class MemoryIntake:
    def __init__(self, reports: Iterable[PendingReport] = ()) -> None:
        self._reports: dict[str, PendingReport] = {r.id: r for r in reports}

    def add(self, report: PendingReport) -> None:
        self._reports[report.id] = report

    def processed(self, report_id: str) -> None:
        self._reports.pop(report_id, None)

    def pending_for(self, town_code: str, resident_id: str) -> Sequence[PendingReport]:
        return [
            r
            for r in self._reports.values()
            if r.town_code == town_code and r.resident_id == resident_id
        ]

    def pending(self, town_code: str) -> list[PendingReport]:
        return sorted(
            (r for r in self._reports.values() if r.town_code == town_code),
            key=lambda r: (r.received_at, r.id),
        )


class StoredIntake:
    """Intake through the storage seam; one key per report, removed when processed."""

    def __init__(self, storage: Storage, town_code: str) -> None:
        self._storage = storage
        self._town = town_code

    def add(self, report: PendingReport) -> None:
        self._storage.save(("intake", self._town, report.id), _dump(report))

    def processed(self, report_id: str) -> None:
        self._storage.remove(("intake", self._town, report_id))

    def pending(self, town_code: str | None = None) -> list[PendingReport]:
        reports = [
            decode(PendingReport, json.loads(raw))
            for _, raw in self._storage.load_range(("intake", self._town))
        ]
        return sorted(reports, key=lambda r: (r.received_at, r.id))

    def pending_for(self, town_code: str, resident_id: str) -> Sequence[PendingReport]:
        if town_code != self._town:
            return ()
        return [r for r in self.pending() if r.resident_id == resident_id]


def _dump(report: PendingReport) -> bytes:
    return json.dumps(encode(report), ensure_ascii=False, sort_keys=True).encode()
