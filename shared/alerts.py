"""Alerts as code: the rules that decide when something must reach a person, their
thresholds, and the state that makes each change logged exactly once.

The rules (docs/operations.md §1) are pure functions from a measurement to an `Alert`:

    stale_sync     a town's data older than `stale_sync_hours` (the nightly import plus
                   margin); unknown when the box never received the town
    box_silent     (hub) an enrolled box not synced for `box_silent_hours`
    disk           the data partition above `disk_used_percent` full or below
                   `disk_min_free_mb` free (SQLite needs room to checkpoint)
    clock          the clock off by more than `clock_offset_s` (chrony, or against the
                   hub's clock), or behind the floor of signed time it has seen
    certificate    a TLS server certificate within `tls_days` of its end, a box or
                   enrolment-issuer certificate within `certificate_days`; expired: critical

The box (edge/alerts.py) and the hub (cloud/alerts.py) measure and call them; both serve
`GET /api/alerts` (JSON) and `GET /alerts` (a short Japanese list). Thresholds come from
`alerts.json` in the data folder (any subset of `Thresholds`' fields; an unknown key is an
error, so a typo does not silently keep a default).

`AlertBook` keeps each alert's last level in the store's `alert_state` table (schema
migration "alert state"): a change of level is logged once — WARNING when an alert turns
red, INFO when it is green again — however many processes and requests evaluate it
(the row is changed with a compare-and-set, and only the writer that changed it logs).

Messages name the town or box and what to do next, in Japanese; they carry no
residents' data.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("renkei.alerts")

CONFIG_FILE = "alerts.json"
OK, UNKNOWN, WARNING, CRITICAL = "ok", "unknown", "warning", "critical"
LEVELS = (OK, UNKNOWN, WARNING, CRITICAL)
LEVEL_LABELS = {OK: "正常", UNKNOWN: "不明", WARNING: "注意", CRITICAL: "異常"}
_JST = timezone(timedelta(hours=9), "JST")


class AlertConfigError(ValueError):
    """alerts.json cannot be used (not JSON, unknown key, not a number)."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    stale_sync_hours: float = 26.0
    box_silent_hours: float = 2.0
    disk_used_percent: float = 80.0
    disk_min_free_mb: float = 512.0
    clock_offset_s: float = 1.0
    tls_days: float = 30.0
    certificate_days: float = 60.0

    @classmethod
    def load(cls, data_dir: Path) -> Thresholds:
        path = data_dir / CONFIG_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AlertConfigError(f"{path}: not readable JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise AlertConfigError(f"{path}: not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise AlertConfigError(f"{path}: unknown thresholds {sorted(unknown)}")
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AlertConfigError(f"{path}: {name} must be a number")
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    subject: str
    level: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    @property
    def ok(self) -> bool:
        return self.level == OK

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self.level]

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), key=self.key)


def _jst(moment: datetime) -> str:
    return moment.astimezone(_JST).strftime("%Y年%m月%d日 %H:%M")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- rules


def stale_sync(town: str, name: str, as_of: str | None, now: datetime, limits: Thresholds) -> Alert:
    moment = _parse_time(as_of)
    if moment is None:
        return Alert(
            "stale_sync",
            town,
            UNKNOWN,
            f"{name}: データをまだ受け取っていません。ハブとの接続を確認してください。",
            {"as_of": as_of},
        )
    hours = (now - moment).total_seconds() / 3600
    detail = {
        "as_of": moment.isoformat(),
        "age_hours": round(hours, 2),
        "limit_hours": limits.stale_sync_hours,
    }
    if hours <= limits.stale_sync_hours:
        return Alert("stale_sync", town, OK, f"{name}: {_jst(moment)} 時点のデータです。", detail)
    return Alert(
        "stale_sync",
        town,
        CRITICAL,
        f"{name}: データが {_jst(moment)} 時点のまま {hours:.0f} 時間更新されていません。"
        "ハブの取込と閉域網の接続を確認してください。",
        detail,
    )


def box_silent(
    box: str, town: str, last_seen: float | None, now: float, limits: Thresholds
) -> Alert:
    if last_seen is None:
        return Alert(
            "box_silent",
            box,
            UNKNOWN,
            f"ボックス {box}（{town}）: 登録後まだ同期していません。",
            {"town": town},
        )
    hours = (now - last_seen) / 3600
    detail = {
        "town": town,
        "last_seen": last_seen,
        "hours": round(hours, 2),
        "limit_hours": limits.box_silent_hours,
    }
    if hours <= limits.box_silent_hours:
        return Alert("box_silent", box, OK, f"ボックス {box}（{town}）: 同期しています。", detail)
    seen = _jst(datetime.fromtimestamp(last_seen, UTC))
    return Alert(
        "box_silent",
        box,
        WARNING,
        f"ボックス {box}（{town}）: {seen} から {hours:.0f} 時間同期がありません。"
        "電源と回線を町の情報担当に確認してください。",
        detail,
    )


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def disk(path: Path, usage: DiskUsage, limits: Thresholds) -> Alert:
    percent = 100.0 * usage.used / usage.total if usage.total else 100.0
    free_mb = usage.free / 1024 / 1024
    detail = {
        "path": str(path),
        "used_percent": round(percent, 1),
        "free_mb": round(free_mb),
        "limit_percent": limits.disk_used_percent,
        "min_free_mb": limits.disk_min_free_mb,
    }
    if percent <= limits.disk_used_percent and free_mb >= limits.disk_min_free_mb:
        return Alert("disk", "data", OK, f"データ領域の使用率 {percent:.0f}%。", detail)
    return Alert(
        "disk",
        "data",
        CRITICAL,
        f"データ領域の使用率が {percent:.0f}%（空き {free_mb:.0f} MB）です。"
        "空きがなくなると記録できなくなります。情報担当に連絡してください。",
        detail,
    )


def clock(
    offset_s: float | None, source: str, behind_floor_s: float | None, limits: Thresholds
) -> Alert:
    detail = {
        "offset_s": offset_s,
        "source": source,
        "behind_floor_s": behind_floor_s,
        "limit_s": limits.clock_offset_s,
    }
    if behind_floor_s is not None and behind_floor_s > 0:
        return Alert(
            "clock",
            "time",
            CRITICAL,
            f"時計が、すでに受け取った署名付きの時刻より {behind_floor_s:.0f} 秒遅れています。"
            "監督者に日付と時刻の確認を依頼してください。",
            detail,
        )
    if offset_s is None:
        return Alert(
            "clock",
            "time",
            UNKNOWN,
            "時刻のずれを測れません（時刻同期の相手に接続できません）。",
            detail,
        )
    if abs(offset_s) <= limits.clock_offset_s:
        return Alert("clock", "time", OK, f"時刻のずれ {offset_s:+.2f} 秒（{source}）。", detail)
    return Alert(
        "clock",
        "time",
        CRITICAL,
        f"時計が {offset_s:+.1f} 秒ずれています（{source}）。"
        "有効期限や監査記録の順序に影響します。時刻同期を確認してください。",
        detail,
    )


def certificate(
    subject: str, what: str, expires_at: datetime | None, now: datetime, days: float
) -> Alert:
    if expires_at is None:
        return Alert("certificate", subject, WARNING, f"{what}がありません。", {"days_limit": days})
    left = (expires_at - now).total_seconds() / 86400
    detail = {"expires_at": expires_at.isoformat(), "days_left": round(left, 1), "days_limit": days}
    if left <= 0:
        return Alert(
            "certificate",
            subject,
            CRITICAL,
            f"{what}の有効期限（{_jst(expires_at)}）が切れています。すぐに更新してください。",
            detail,
        )
    if left <= days:
        return Alert(
            "certificate",
            subject,
            WARNING,
            f"{what}の有効期限が {_jst(expires_at)} です（残り {left:.0f} 日）。"
            "更新を手配してください。",
            detail,
        )
    return Alert("certificate", subject, OK, f"{what}: 期限 {_jst(expires_at)}。", detail)


# ---------------------------------------------------------------------------- state


class AlertBook:
    """Each alert's last level, in the store's `alert_state` table (created by the
    store's schema migrations; the caller applies them first)."""

    def __init__(self, db_path: Path) -> None:
        self._db = sqlite3.connect(
            str(db_path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def observe(self, alerts: Iterable[Alert], now: float) -> list[tuple[Alert, str | None]]:
        """Record this evaluation; return (and log) the alerts whose level changed, with
        the level before (None: never seen)."""
        changed: list[tuple[Alert, str | None]] = []
        with self._lock:
            for alert in alerts:
                row = self._db.execute(
                    "SELECT level FROM alert_state WHERE key = ?", (alert.key,)
                ).fetchone()
                if row is None:
                    inserted = self._db.execute(
                        "INSERT OR IGNORE INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            alert.key,
                            alert.rule,
                            alert.subject,
                            alert.level,
                            alert.message,
                            now,
                            now,
                        ),
                    ).rowcount
                    if inserted:
                        changed.append((alert, None))
                    continue
                previous = str(row[0])
                if previous == alert.level:
                    self._db.execute(
                        "UPDATE alert_state SET checked = ?, message = ? WHERE key = ?",
                        (now, alert.message, alert.key),
                    )
                    continue
                swapped = self._db.execute(
                    "UPDATE alert_state SET level = ?, message = ?, since = ?, checked = ?"
                    " WHERE key = ? AND level = ?",
                    (alert.level, alert.message, now, now, alert.key, previous),
                ).rowcount
                if swapped:  # another evaluator may have logged this change already
                    changed.append((alert, previous))
        for alert, before in changed:
            if before is None and alert.ok:
                continue  # first sight of a green alert is not news
            level = logging.INFO if alert.ok else logging.WARNING
            log.log(
                level,
                "alert %s: %s -> %s: %s",
                alert.key,
                before or "new",
                alert.level,
                alert.message,
            )
        return changed

    def since(self) -> dict[str, float]:
        with self._lock:
            rows = self._db.execute("SELECT key, since FROM alert_state").fetchall()
        return {str(k): float(s) for k, s in rows}


def summary(alerts: list[Alert], since: dict[str, float]) -> dict[str, Any]:
    """The JSON of GET /api/alerts."""
    order = {level: i for i, level in enumerate(reversed(LEVELS))}
    ranked = sorted(alerts, key=lambda a: (order[a.level], a.rule, a.subject))
    worst = ranked[0].level if ranked else OK
    return {
        "status": worst,
        "alerts": [dict(a.to_json(), since=since.get(a.key)) for a in ranked],
    }
