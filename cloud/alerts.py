"""Alerts at the hub (rules in shared/alerts.py), and the two routes both the hub and the
box serve:

    GET /api/alerts   {"status": worst level, "alerts": [{rule, subject, level, message,
                       detail, key, since}]}   (HTTP 200 whatever the level)
    GET /alerts       the same as a short Japanese list (templates/alerts.html)
    GET /api/time     {"time": UTC seconds}: the clock boxes measure their drift against

The hub evaluates: each town's newest import (stale_sync), each enrolled box's last sync
(box_silent), its data folder's disk, its clock (chrony when present), the enrolment
issuer's certificate and every enrolled box's certificate — every five minutes in the
hub process (`HubAlerts`, started by the hub's lifespan), and whenever /alerts is asked.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from shared import alerts, migrations
from shared.alerts import Alert, AlertBook, DiskUsage, Thresholds
from shared.background import BackgroundLoop

if TYPE_CHECKING:
    from cloud.enrolment import HubEnrolment
    from shared.storage import Storage

log = logging.getLogger(__name__)


def chrony_offset(chronyc: str = "chronyc") -> float | None:
    """The system clock's offset from NTP time as chrony sees it (seconds; None without
    chrony or without a source). `chronyc -c tracking`: field 5 is "System time"."""
    if shutil.which(chronyc) is None:
        return None
    try:
        out = subprocess.run(
            [chronyc, "-c", "tracking"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
        return float(out.strip().split(",")[4])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def disk_usage(path: Path) -> DiskUsage:
    usage = shutil.disk_usage(path)
    return DiskUsage(usage.total, usage.used, usage.free)


def alert_routes(
    evaluate: Callable[[Request], list[Alert]],
    book: Callable[[], AlertBook],
    templates: Environment,
    context: Callable[[], dict[str, Any]] = dict,
) -> list[Route]:
    """GET /api/alerts and GET /alerts over an `evaluate` that measures and applies the
    rules; every evaluation is recorded (each change of level logged once)."""

    def run(request: Request) -> dict[str, Any]:
        found = evaluate(request)
        states = book()
        states.observe(found, time.time())
        return alerts.summary(found, states.since())

    async def api(request: Request) -> JSONResponse:
        return JSONResponse(
            await run_in_threadpool(run, request), headers={"cache-control": "no-store"}
        )

    async def page(request: Request) -> HTMLResponse:
        result = await run_in_threadpool(run, request)
        html = templates.get_template("alerts.html").render(
            result=result, labels=alerts.LEVEL_LABELS, **context()
        )
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    return [Route("/api/alerts", api), Route("/alerts", page)]


def hub_alerts(
    data_dir: Path, storage: Storage, enrolment: HubEnrolment | None, limits: Thresholds
) -> list[Alert]:
    from cloud.store import TownStore, known_towns

    now = datetime.now(UTC)
    found = []
    for town in known_towns(storage):
        store = TownStore(storage, town)
        name = str((store.town_settings() or {}).get("name", town))
        found.append(alerts.stale_sync(town, name, store.as_of(), now, limits))
    found.append(alerts.disk(data_dir, disk_usage(data_dir), limits))
    offset = chrony_offset()
    found.append(alerts.clock(offset, "chrony", None, limits))
    if enrolment is not None and enrolment.registry.setting("root") is not None:
        issuer = enrolment.registry.issuer_certificate()
        found.append(
            alerts.certificate(
                "issuer",
                "ハブの登録用証明書（連合ルートによる委任）",
                issuer.expires_at if issuer else None,
                now,
                limits.certificate_days,
            )
        )
        for box in enrolment.registry.boxes():
            if box.revoked_at is not None:
                continue
            found.append(
                alerts.box_silent(box.box, box.town, box.last_seen, now.timestamp(), limits)
            )
            found.append(
                alerts.certificate(
                    f"box:{box.box}",
                    f"ボックス {box.box} の登録証明書",
                    box.cert().expires_at,
                    now,
                    limits.certificate_days,
                )
            )
    return found


class HubAlerts(BackgroundLoop):
    """The hub's alerts: evaluated every `interval_s` by a task of the hub process (so a
    change of state is logged once even when nobody opens /alerts), and on request.

    A task in the hub's lifespan rather than a systemd timer: the hub ships as one
    container (Dockerfile.cloud), where no systemd runs, and the evaluation needs the hub's
    open store and enrolment registry, which the process already holds."""

    def __init__(
        self, data_dir: Path, enrolment: HubEnrolment | None, *, interval_s: float = 300.0
    ) -> None:
        self.data_dir = data_dir
        self.enrolment = enrolment
        self.interval_s = interval_s
        self._book: AlertBook | None = None
        self._storage: Storage | None = None

    def book(self) -> AlertBook:
        if self._book is None:
            migrations.apply(self.data_dir / "hub.db", "hub")
            self._book = AlertBook(self.data_dir / "hub.db")
        return self._book

    def evaluate(self, storage: Storage) -> list[Alert]:
        return hub_alerts(self.data_dir, storage, self.enrolment, Thresholds.load(self.data_dir))

    def check(self, storage: Storage) -> list[tuple[Alert, str | None]]:
        """One scheduled evaluation: the alerts whose level changed (each logged once)."""
        return self.book().observe(self.evaluate(storage), time.time())

    async def _run(self) -> None:
        assert self._storage is not None  # set by start()
        while True:  # the first round one interval after start: the towns open first
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.check, self._storage)
            except Exception:  # a bad thresholds file or a full disk: try again next round
                log.exception("scheduled hub alert evaluation failed")

    async def start(self, storage: Storage) -> None:  # type: ignore[override]
        self._storage = storage
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._book is not None:
            self._book.close()
            self._book = None

    def routes(self) -> list[Route]:
        from jinja2 import PackageLoader, select_autoescape

        templates = Environment(
            loader=PackageLoader("cloud", "templates"), autoescape=select_autoescape()
        )

        def evaluate(request: Request) -> list[Alert]:
            return self.evaluate(request.app.state.storage)

        async def hub_time(request: Request) -> JSONResponse:
            return JSONResponse({"time": time.time()}, headers={"cache-control": "no-store"})

        return [
            *alert_routes(evaluate, self.book, templates, lambda: {"where": "ハブ"}),
            Route("/api/time", hub_time),
        ]

