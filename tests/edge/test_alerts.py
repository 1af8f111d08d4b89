"""Alerts driven red and back green by real conditions, on a box enrolled with a running
hub and at the hub itself: a town's data going stale and fresh again through the box's
sync, the disk threshold, the clock behind the floor of signed time until real time
passes it, a TLS certificate near its end replaced by a new one, a box certificate cut
short by the hub's expiring delegation and renewed by enrolling again. Each change of
level is logged once."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from enrolment_world import PASSPHRASE, TOWN, certify_issuer, make_world
from nacl.signing import SigningKey
from servers import serve

from cloud.app import create_app as create_hub
from cloud.enrolment import issue_token
from edge.app import BoxConfig
from edge.app import create_app as create_box
from edge.enrolment import enrol
from edge.tls import issue_server_cert, write_server_files
from shared.clock import TrustedClock
from shared.storage import SqliteStorage
from shared.sync.identity import Identity
from shared.sync.log import BlobLog
from shared.sync.notices import AS_OF, fresh_n, sign_notice
from shared.sync.replica import seal_documents


def _levels(url: str) -> dict[str, str]:
    answer = httpx.get(f"{url}/api/alerts", timeout=30).raise_for_status().json()
    return {a["key"]: a["level"] for a in answer["alerts"]}


def _publish(hub: Path, as_of: datetime, seq: int) -> None:
    """What an import leaves for the boxes: a blob in the hub's sync log under the hub's
    writer key, the town's signed as-of statement, and the hub's own export time."""
    from shared.crypto import TownPublic

    storage = SqliteStorage(hub / "hub.db")
    writer = Identity(SigningKey(bytes(range(32))))
    public = TownPublic.from_json(json.loads(storage.load((TOWN, "public")) or b"{}"))
    log = BlobLog(storage, authority=writer.writer_id)
    seal_documents(log, writer, public, {"blocks": f"blocks {seq}".encode()})
    covers = {writer.writer_id: log.next_seq(TOWN, writer.writer_id) - 1}
    notice = sign_notice(
        writer, AS_OF, TOWN, fresh_n(), as_of=as_of.isoformat(), covers=covers,
        issued=time.time(),
    )  # fmt: skip
    log.accept_notices([notice], [TOWN])
    storage.save_many(
        [
            (("federation", "hub-writer"), bytes(writer.signing_key.verify_key).hex().encode()),
            ((TOWN, "as-of"), as_of.isoformat().encode()),
        ]
    )
    storage.close()


def _token(app: object, box: str = "seiro-1") -> str:
    enrolment = app.state.enrolment  # type: ignore[attr-defined]
    storage = SqliteStorage(enrolment.data_dir / "hub.db")
    try:
        return issue_token(
            enrolment.registry, storage, enrolment.issuer.signing_key, box=box, town=TOWN, tls=None
        )
    finally:
        storage.close()


def _wait_level(url: str, key: str, level: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _levels(url).get(key)) != level:
        assert time.monotonic() < deadline, f"{key} stayed {seen}, not {level}"
        time.sleep(0.3)


def test_box_alerts_go_red_and_back_green(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    # a hub whose enrolment delegation ends in 20 days: box certificates are cut to it
    world = make_world(tmp_path, issuer_days=20, tls_days=10)
    _publish(world.hub, datetime.now(UTC) - timedelta(days=3), 1)
    data, tls = tmp_path / "box", tmp_path / "box-tls"
    hub_app = create_hub(world.hub)
    caplog.set_level(logging.INFO, logger="renkei.alerts")
    with serve(hub_app) as hub_url:
        enrol(
            hub_url,
            _token(hub_app),
            data,
            root=world.root.verify_key,
            tls_dir=tls,
            from_dir=world.tls,
            ca_file=world.ca,
        )
        # a signed time seen from 4 s in this box's future (e.g. a clock set back)
        TrustedClock(data / "clock.json").observe_signed_time(time.time() + 4)
        config = BoxConfig(hub_url, TOWN, data, box_id="seiro-1", pull_interval_s=0.5)
        with serve(create_box(config)) as box_url:
            red = _levels(box_url)
            assert red[f"stale_sync:{TOWN}"] == "critical"  # data 3 days old
            assert red["clock:time"] == "critical"  # behind the floor
            assert red["certificate:tls"] == "warning"  # 10 days left, limit 30
            assert red["certificate:box"] == "warning"  # 20 days left, limit 60
            assert red["disk:data"] == "ok"
            page = httpx.get(f"{box_url}/alerts").text
            assert "【異常】" in page and "時点のまま" in page and "TLS サーバー証明書" in page

            # disk: the threshold against the real usage of the data folder
            (data / "alerts.json").write_text(json.dumps({"disk_used_percent": 0.0}))
            assert _levels(box_url)["disk:data"] == "critical"
            (data / "alerts.json").unlink()

            # each fixed for real:
            _publish(world.hub, datetime.now(UTC), 2)  # a fresh import reaches the box
            ca_key = (tmp_path / "ceremony-ca.key").read_bytes()
            write_server_files(
                tls, *issue_server_cert(world.ca.read_bytes(), ca_key, [], ["127.0.0.1"], 397)
            )
            certify_issuer(world.hub, world.root, 400)  # the yearly ceremony renews it
            hub_app.state.enrolment.reload(PASSPHRASE)
            enrol(hub_url, _token(hub_app), data, root=world.root.verify_key, tls_dir=tls)
            time.sleep(4.5)  # real time passes the floor
            _wait_level(box_url, f"stale_sync:{TOWN}", "ok")
            green = _levels(box_url)
            assert {k: v for k, v in green.items() if v != "ok"} == {}, green
            _levels(box_url)  # evaluated again: no new log lines

    lines = [r.getMessage() for r in caplog.records if r.name == "renkei.alerts"]
    for key in (f"stale_sync:{TOWN}", "clock:time", "certificate:tls", "certificate:box"):
        mine = [line for line in lines if line.startswith(f"alert {key}:")]
        assert len(mine) == 2, (key, mine)  # red once, green once
        assert "-> ok" in mine[-1]
    disk = [line for line in lines if line.startswith("alert disk:data:")]
    assert len(disk) == 2  # red once, green once


def test_hub_alerts_and_their_state_survive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    world = make_world(tmp_path, issuer_days=20)
    _publish(world.hub, datetime.now(UTC) - timedelta(days=2), 1)
    caplog.set_level(logging.INFO, logger="renkei.alerts")
    with serve(create_hub(world.hub)) as url:
        red = _levels(url)
        assert red[f"stale_sync:{TOWN}"] == "critical"
        assert red["certificate:issuer"] == "warning"
        assert red["clock:time"] in ("ok", "unknown")  # chrony if the machine runs it
        assert "time" in httpx.get(f"{url}/api/time").json()
        assert "警報（ハブ）" in httpx.get(f"{url}/alerts").text
    first = len([r for r in caplog.records if r.name == "renkei.alerts"])
    with serve(create_hub(world.hub)) as url:  # a restarted hub: same states, no new lines
        assert _levels(url)[f"stale_sync:{TOWN}"] == "critical"
        assert len([r for r in caplog.records if r.name == "renkei.alerts"]) == first
        _publish(world.hub, datetime.now(UTC), 2)
        certify_issuer(world.hub, world.root, 400)
        green = _levels(url)
        assert green[f"stale_sync:{TOWN}"] == "ok" and green["certificate:issuer"] == "ok"
    assert len([r for r in caplog.records if r.name == "renkei.alerts"]) == first + 2


def test_hub_alerts_are_evaluated_on_a_schedule_and_each_change_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody asks /alerts here: the hub's own task evaluates every 0.2 s."""
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    world = make_world(tmp_path)
    caplog.set_level(logging.INFO, logger="renkei.alerts")

    def disk_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "renkei.alerts" and r.getMessage().startswith("alert disk:")
        ]

    def until(condition: object, what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    app = create_hub(world.hub, alert_interval_s=0.2)
    with serve(app):
        (world.hub / "alerts.json").write_text(json.dumps({"disk_used_percent": 0.0}))
        until(lambda: disk_lines(), "the disk alert to go red")
        time.sleep(1.5)  # several more evaluations: still one line
        assert len(disk_lines()) == 1 and "-> critical" in disk_lines()[0]
        (world.hub / "alerts.json").unlink()
        until(lambda: len(disk_lines()) == 2, "the disk alert to go green")
        time.sleep(1.5)
        assert len(disk_lines()) == 2 and "-> ok" in disk_lines()[1]
