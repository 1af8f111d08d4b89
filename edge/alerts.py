"""Alerts on the box (rules in shared/alerts.py; routes in cloud/alerts.py):

- stale_sync per town the box holds, from the as-of time of the data it received;
- disk: the box's data folder;
- clock: chrony's offset when chrony runs, otherwise the offset against the hub's clock
  (GET {hub}/api/time, half the round trip allowed for); and critical whenever the wall
  clock is behind the floor of signed time the box has seen (shared/clock.py);
- certificate: the box's TLS server certificate (`federation.json`'s tls_dir, or
  discovery.json's tls_cert) within `tls_days`, its box certificate within
  `certificate_days` (missing: the box is not enrolled).

    GET /api/alerts, GET /alerts     no login: no personal data, for IT staff and monitors
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography import x509
from jinja2 import Environment, PackageLoader, select_autoescape
from nacl.signing import SigningKey
from starlette.requests import Request
from starlette.routing import Route

from cloud.alerts import alert_routes, chrony_offset, disk_usage
from edge.enrolment import federation_settings
from edge.identity_api import KEY_FILE, read_enrolment
from shared import alerts, migrations
from shared.alerts import Alert, AlertBook, Thresholds

if TYPE_CHECKING:
    from edge.app import Box


def hub_offset(hub_url: str, timeout_s: float = 3.0) -> float | None:
    """This clock minus the hub's, in seconds (None when the hub does not answer)."""
    try:
        before = time.time()
        response = httpx.get(f"{hub_url.rstrip('/')}/api/time", timeout=timeout_s)
        after = time.time()
        hub = float(response.raise_for_status().json()["time"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return (before + after) / 2 - hub


def tls_certificate(data_dir: Path) -> Path | None:
    folder = federation_settings(data_dir).get("tls_dir")
    if folder and (Path(folder) / "server.crt").is_file():
        return Path(folder) / "server.crt"
    try:
        configured = json.loads((data_dir / "discovery.json").read_text()).get("tls_cert")
    except (OSError, ValueError):
        configured = None
    return Path(configured) if configured and Path(configured).is_file() else None


def pem_expiry(path: Path) -> datetime | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


def box_alerts(box: Box, limits: Thresholds) -> list[Alert]:
    config = box.config
    now = datetime.now(UTC)
    found = []
    for town in box.replica.towns() or [config.town_code]:
        found.append(
            alerts.stale_sync(
                town, box.replica.town_name(town), box.replica.as_of(town), now, limits
            )
        )
    found.append(alerts.disk(config.data_dir, disk_usage(config.data_dir), limits))
    floor = box.clock.floor
    behind = floor - time.time() if floor is not None else None
    offset, source = chrony_offset(), "chrony"
    if offset is None:
        offset, source = hub_offset(config.hub_url), "ハブとの比較"
    found.append(alerts.clock(offset, source, behind, limits))
    tls = tls_certificate(config.data_dir)
    if tls is not None:
        found.append(
            alerts.certificate(
                "tls", "このボックスの TLS サーバー証明書", pem_expiry(tls), now, limits.tls_days
            )
        )
    key = SigningKey((config.data_dir / KEY_FILE).read_bytes())
    enrolled = read_enrolment(config.data_dir, key, config.host_box)
    found.append(
        alerts.certificate(
            "box",
            "このボックスの登録証明書（renkei enroll）",
            enrolled.expires_at if enrolled else None,
            now,
            limits.certificate_days,
        )
    )
    return found


def box_alert_routes(box: Box) -> list[Route]:
    templates = Environment(
        loader=PackageLoader("edge", "templates"), autoescape=select_autoescape()
    )
    db = box.config.data_dir / "replica.db"
    migrations.apply(db, "box")  # at start: the alert state table
    book = AlertBook(db)

    def evaluate(request: Request) -> list[Alert]:
        return box_alerts(box, Thresholds.load(box.config.data_dir))

    where = f"連携ボックス {box.config.host_box}"
    context = {"where": where, "drill": box.config.drill}  # the 訓練モード banner
    return alert_routes(evaluate, lambda: book, templates, lambda: context)
