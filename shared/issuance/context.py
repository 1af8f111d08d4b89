"""Everything a decision depends on besides the request: data, time, freshness and modes.

Why explicit: the same request can be right on one box and wrong on another. A box whose
支援措置 data has not been confirmed recently may have missed a new block, so it must not
hand anything to anyone but the person; a box cut off from the hub works on stale data,
so third-party and 士業 requests are only taken (BRIEF §1 emergency policy). The two
"checked at" times are the moments this box last matched the hub's signed "newest data
as of" statement for the town's block document and registry (BRIEF §3 Sync); the caller
reads them from the replica, and decisions never look at a clock of their own.

Disaster mode, the disaster fee exemption and a copay exemption are switched on by the
town's representative (the UI records who and when); drill mode is the box's training mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from .data import TownData
from .errors import RequestError
from .intake import Intake, NoIntake

JST = timezone(timedelta(hours=9), "JST")


@dataclass(frozen=True, slots=True)
class Policy:
    """A town's configurable limits."""

    # Non-本人 issuance stops when block data was last confirmed longer ago than this.
    # Blocks sync continuously while online and are imported nightly: a missed night
    # plus a margin.
    block_freshness_limit: timedelta = timedelta(hours=26)
    # Registry data older than this counts as stale: third parties and 士業 get intake only.
    registry_stale_after: timedelta = timedelta(hours=2)
    # A 委任状 older than this many days is not accepted.
    power_of_attorney_max_age_days: int = 90


@dataclass(frozen=True, slots=True)
class CopayExemption:
    """A declared disaster's 一部負担金免除 (国保法 §44): while one is declared, the
    一部負担金免除証明書 is issued at the counter instead of only taken as intake."""

    disaster: str  # e.g. 令和8年11月26日 新潟県下越地方の地震
    valid_from: date
    valid_until: date
    reason: str = "住家の全半壊等"


@dataclass(frozen=True)
class IssuanceContext:
    data: TownData
    now: datetime
    blocks_checked_at: datetime
    registry_checked_at: datetime
    policy: Policy = field(default_factory=Policy)
    disaster_mode: bool = False
    disaster_fee_exemption: bool = False
    drill: bool = False
    copay_exemption: CopayExemption | None = None
    intake: Intake = field(default_factory=NoIntake)

    def __post_init__(self) -> None:
        for name in ("now", "blocks_checked_at", "registry_checked_at"):
            if getattr(self, name).tzinfo is None:
                raise RequestError(f"{name} にタイムゾーンがありません（内部エラー）")

    @property
    def today(self) -> date:
        """The counter's date in Japan, whatever zone `now` was given in."""
        return self.now.astimezone(JST).date()

    @property
    def blocks_stale(self) -> bool:
        return self.now - self.blocks_checked_at > self.policy.block_freshness_limit

    @property
    def registry_stale(self) -> bool:
        return self.now - self.registry_checked_at > self.policy.registry_stale_after
