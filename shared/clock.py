"""Trusted time for a box (BRIEF §3 Time): a floor from signed timestamps, elapsed uptime,
and a supervisor's confirmation of the date after a power loss.

A box's wall clock is the least trustworthy thing it has: an RTC battery dies, someone sets
the date back to reopen an expired activation, a power cut resets it to 1970. Expiry,
certificate dates, the choice of 職務代理者 and audit order all hang on it, so:

- The FLOOR is the newest signed timestamp the box has seen (a hub "newest data as of"
  statement, an activation, a peer's audit head — the caller verifies the signature and
  hands over the time). It only ever rises, is persisted, and `now()` refuses a wall clock
  behind it (`ClockBehindFloor`).
- Elapsed uptime comes from the monotonic clock, which no one can set: `mark()` and
  `elapsed_since(mark)` let an expiry ("at most 24 hours") be counted in elapsed time as
  well as in wall time, so moving the wall clock back does not extend it. Monotonic time
  restarts at boot, so marks are meaningful only within one process.
- After a power loss (the kernel's boot id differs from the one last saved)
  `needs_date_confirmation` stays True — across process restarts too — until a supervisor
  confirms the date (`confirm_date`), which records who confirmed which date, and when.
  The caller checks that the login id is a supervisor's; this module only records it.
  A fresh state file (first start, installed by IT staff) needs no confirmation.

State file (JSON, UTF-8, written atomically: temp file + fsync + os.replace; it holds no
secret, only times and a login id):

    {"version": 1, "floor": 1767225600.0 | null, "boot_id": "…",
     "needs_date_confirmation": false,
     "confirmations": [{"login_id": "…", "date": "2026-01-01", "at": 1767225600.0,
                        "boot_id": "…"}, …]}           # newest last, at most 50 kept

Errors:

    ClockError
     ├── ClockBehindFloor        wall clock earlier than the floor (Japanese message)
     ├── DateConfirmationRefused confirm_date with a date behind the floor or one the
     │                           box's clock does not show (Japanese message)
     └── ClockStateError         unreadable state file (never silently reset: that would
                                 drop the floor)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

JST = timezone(timedelta(hours=9), "JST")
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
STATE_VERSION = 1
MAX_CONFIRMATIONS = 50

# ---------------------------------------------------------------------------- errors


class ClockError(Exception):
    """Base of every error this module raises. `str()` is for the clerk (Japanese)."""


class ClockBehindFloor(ClockError):
    """The wall clock is earlier than a signed timestamp the box has already seen."""

    def __init__(self, wall: float, floor: float) -> None:
        self.wall = wall
        self.floor = floor
        seen = _jst(floor).strftime("%Y年%m月%d日 %H:%M")
        super().__init__(
            "この端末(ボックス)の時計が遅れています。"
            f"すでに {seen} 以降の記録を受け取っているため、処理を止めました。"
            "監督者に日付と時刻の確認・修正を依頼してください。"
        )


class DateConfirmationRefused(ClockError):
    """A supervisor's date confirmation that cannot be accepted."""


class ClockStateError(ClockError):
    """The state file exists but cannot be read as a clock state."""

    def __init__(self, path: Path, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"時刻の記録ファイル({path.name})が読めません。"
            "処理を止めました。システム管理者に連絡してください。"
        )


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Confirmation:
    """A supervisor's confirmation of the box's date after a power loss."""

    login_id: str
    date: date
    at: float  # wall time when confirmed (UTC seconds)
    boot_id: str


def read_boot_id() -> str:
    """The Linux kernel's random id for the current boot."""
    return BOOT_ID_PATH.read_text(encoding="ascii").strip()


def _jst(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, JST)


def _finite_time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds since the epoch")
    result = float(value)
    if result != result or result in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be finite")
    return result


class TrustedClock:
    """The box's clock: wall time checked against a persisted floor, plus uptime.

    `wall`, `monotonic` and `boot_id_reader` are injectable for tests. Thread-safe.
    """

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        boot_id_reader: Callable[[], str] = read_boot_id,
    ) -> None:
        self._path = Path(state_path)
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._started = monotonic()
        boot_id = boot_id_reader()
        state = self._load()
        self._floor: float | None = None
        self._needs_confirmation = False
        self._confirmations: list[Confirmation] = []
        if state is not None:
            self._floor, saved_boot, self._needs_confirmation, self._confirmations = state
            if saved_boot != boot_id:
                self._needs_confirmation = True
        self._boot_id = boot_id
        self._save()

    # ------------------------------------------------------------------ floor and now

    @property
    def floor(self) -> float | None:
        """The newest signed timestamp seen (UTC seconds), or None before the first."""
        return self._floor

    def observe_signed_time(self, ts: float) -> None:
        """Raise the floor to `ts`, a timestamp whose signature the caller has verified.
        Older timestamps leave it unchanged."""
        value = _finite_time(ts, "ts")
        with self._lock:
            if self._floor is None or value > self._floor:
                self._floor = value
                self._save()

    def now(self) -> float:
        """Wall time (UTC seconds); raises ClockBehindFloor if it is behind the floor."""
        wall = self._wall()
        floor = self._floor
        if floor is not None and wall < floor:
            raise ClockBehindFloor(wall, floor)
        return wall

    def today(self) -> date:
        """`now()` as a calendar date in Japan."""
        return _jst(self.now()).date()

    # ------------------------------------------------------------------ elapsed time

    def mark(self) -> float:
        """A point in monotonic time, to pass to `elapsed_since` later (same process)."""
        return self._monotonic()

    def elapsed_since(self, mark: float) -> float:
        """Seconds of uptime since `mark`, whatever the wall clock did meanwhile."""
        return max(0.0, self._monotonic() - mark)

    @property
    def uptime(self) -> float:
        """Seconds since this clock was created."""
        return self.elapsed_since(self._started)

    # ------------------------------------------------------------------ power loss

    @property
    def needs_date_confirmation(self) -> bool:
        """True after a power loss until a supervisor confirms the date."""
        return self._needs_confirmation

    @property
    def confirmations(self) -> tuple[Confirmation, ...]:
        """Recorded confirmations, oldest first (at most MAX_CONFIRMATIONS)."""
        return tuple(self._confirmations)

    def confirm_date(self, supervisor_login_id: str, confirmed_date: date) -> Confirmation:
        """Record that a supervisor confirmed the box's date. The caller has checked that
        `supervisor_login_id` holds the supervisor role.

        Refused when `confirmed_date` is behind the floor's date or is not the date the
        box's clock shows (the clock must be corrected first)."""
        if not supervisor_login_id:
            raise ValueError("supervisor_login_id must not be empty")
        if isinstance(confirmed_date, datetime) or not isinstance(confirmed_date, date):
            raise TypeError("confirmed_date must be a datetime.date")
        with self._lock:
            floor = self._floor
            if floor is not None and confirmed_date < _jst(floor).date():
                raise DateConfirmationRefused(
                    f"{confirmed_date:%Y年%m月%d日} は、このボックスがすでに受け取った記録"
                    f"({_jst(floor):%Y年%m月%d日})より前の日付のため確認できません。"
                    "正しい日付を確認し、システム管理者に時計の修正を依頼してください。"
                )
            at = self.now()
            shown = _jst(at).date()
            if confirmed_date != shown:
                raise DateConfirmationRefused(
                    f"ボックスの時計は {shown:%Y年%m月%d日} を示しています。"
                    f"確認された日付({confirmed_date:%Y年%m月%d日})と一致しないため、"
                    "先にシステム管理者に時計の修正を依頼してください。"
                )
            record = Confirmation(supervisor_login_id, confirmed_date, at, self._boot_id)
            self._confirmations = [*self._confirmations, record][-MAX_CONFIRMATIONS:]
            self._needs_confirmation = False
            self._save()
            return record

    # ------------------------------------------------------------------ persistence

    def _load(self) -> tuple[float | None, str, bool, list[Confirmation]] | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ClockStateError(self._path, str(exc)) from exc
        try:
            data: Any = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError("not a version-1 clock state")
            floor_raw = data["floor"]
            floor = None if floor_raw is None else _finite_time(floor_raw, "floor")
            boot_id = data["boot_id"]
            needs = data["needs_date_confirmation"]
            if not isinstance(boot_id, str) or not isinstance(needs, bool):
                raise ValueError("bad boot_id or needs_date_confirmation")
            confirmations = [
                Confirmation(
                    login_id=str(item["login_id"]),
                    date=date.fromisoformat(item["date"]),
                    at=_finite_time(item["at"], "at"),
                    boot_id=str(item["boot_id"]),
                )
                for item in data["confirmations"]
            ]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ClockStateError(self._path, f"{type(exc).__name__}: {exc}") from exc
        return floor, boot_id, needs, confirmations

    def _save(self) -> None:
        data = {
            "version": STATE_VERSION,
            "floor": self._floor,
            "boot_id": self._boot_id,
            "needs_date_confirmation": self._needs_confirmation,
            "confirmations": [
                {
                    "login_id": c.login_id,
                    "date": c.date.isoformat(),
                    "at": c.at,
                    "boot_id": c.boot_id,
                }
                for c in self._confirmations
            ],
        }
        payload = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
        directory = self._path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
