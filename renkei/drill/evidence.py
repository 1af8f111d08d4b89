"""What a row's verdict rests on.

A row holds checks; each check holds the evidence it saw — a request made and the status
received, a document produced (発行番号, size, sha256), a refusal received, a measurement.
The verdicts:

    ○       every check passed, and each rests on at least one piece of evidence
    ×       some check failed (the evidence says what was received instead)
    未検証   no evidence, or some check could not be run (the feature is not there yet,
            a tool is missing): never ○ on faith

A check that fails without any evidence (an exception before any request went out) is
未検証 too: only what was seen can make a row ○ or ×.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, UNVERIFIED = "○", "×", "未検証"


@dataclass
class Evidence:
    kind: str  # request | document | refusal | measurement | scan | note
    text: str  # one line a person reads
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Check:
    name: str
    passed: bool | None = None  # None: not run / could not be decided
    evidence: list[Evidence] = field(default_factory=list)
    reason: str = ""  # why 未検証, or what went wrong

    @property
    def verdict(self) -> str:
        if not self.evidence:
            return UNVERIFIED
        if self.passed is True:
            return PASS
        if self.passed is False:
            return FAIL
        return UNVERIFIED

    def see(self, kind: str, text: str, **data: Any) -> Evidence:
        item = Evidence(kind, text, data)
        self.evidence.append(item)
        return item

    def ok(self, condition: bool, reason: str = "") -> bool:
        """Record the outcome: a check is failed by any false condition, never un-failed."""
        if not condition:
            self.passed = False
            if reason and not self.reason:
                self.reason = reason
        elif self.passed is None:
            self.passed = True
        return condition

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.verdict,
            "reason": self.reason,
            "evidence": [e.to_json() for e in self.evidence],
        }


def unverified(name: str, reason: str) -> Check:
    return Check(name, None, [], reason)


@dataclass
class RowResult:
    number: int
    town: str
    checks: list[Check] = field(default_factory=list)
    seconds: float | None = None  # issuance rows: search → document
    seed_seconds: float | None = None

    @property
    def verdict(self) -> str:
        if not self.checks:
            return UNVERIFIED
        verdicts = [c.verdict for c in self.checks]
        if FAIL in verdicts:
            return FAIL
        if UNVERIFIED in verdicts:
            return UNVERIFIED
        return PASS

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.number,
            "town": self.town,
            "result": self.verdict,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "seed_seconds": self.seed_seconds,
            "checks": [c.to_json() for c in self.checks],
        }
