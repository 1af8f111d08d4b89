"""The hub operator's screens on a real hub server (uvicorn on loopback): nothing without
the operator's login, CSRF on every form, replica health per town, the intake queue of
exports the boxes handed over (opened only with the custody and an enrolled box's key),
and reconciliation reports saved from `renkei reconcile --json`."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey
from servers import serve

from cloud.app import create_app, hub_db_path
from cloud.custody import Custody
from cloud.importer import import_export
from cloud.operators import add_operator
from cloud.screens import open_intake
from edge.exports import seal_export
from shared import crypto
from shared.blobs import BlobError
from shared.issuance.codec import encode
from shared.issuance.reconcile import ReconciliationReport
from shared.storage import SqliteStorage

PASSWORD = "kumo no ue no sora 連携ハブ"


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> Iterator[tuple[str, Path, Custody]]:
    data = tmp_path_factory.mktemp("hub-screens")
    storage = SqliteStorage(hub_db_path(data))
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    storage.close()
    add_operator(data, "ops.sato", PASSWORD)
    report = ReconciliationReport(
        "15307", "聖籠町", datetime(2026, 11, 27, 9, tzinfo=UTC), (), (), (), ()
    )
    (data / "reconcile").mkdir()
    (data / "reconcile" / "15307-day2.json").write_text(
        json.dumps(encode(report) | {"clean": report.clean}, ensure_ascii=False), encoding="utf-8"
    )
    (data / "reconcile" / "broken.json").write_text("{}", encoding="utf-8")
    with serve(create_app(data)) as url:
        yield url, data, custody


def _log_in(client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/operator/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post(
        "/operator/login", data={"csrf_token": token, "login": "ops.sato", "password": password}
    )


def _export(
    town: str, box_key: SigningKey, ring: crypto.KeyRing, name: str, box_id: str = "B01"
) -> bytes:
    intake = json.dumps(
        [
            {
                "number": "U-15307-B01-000001",
                "received_at": "2026-11-27T10:00+09:00",
                "kind": "証明書の郵送",
                "state": "未処理",
                "subject_name": "秘密 花子",
            }
        ],
        ensure_ascii=False,
    ).encode()
    manifest = {
        "format": "renkei-emergency-export",
        "town": town,
        "files": {"intake.json": {"sha256": hashlib.sha256(intake).hexdigest()}},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("intake.json", intake)
    return seal_export(buffer.getvalue(), "emergency", name, ring.public, box_id, box_key)


def test_nothing_without_the_operators_login(hub: tuple[str, Path, Custody]) -> None:
    url, _, _ = hub
    with httpx.Client(base_url=url) as client:
        for path in ("/operator", "/operator/intake", "/operator/conflicts", "/operator/reconcile"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/operator/login"
        assert _log_in(client, PASSWORD + "x").status_code == 401
        no_token = client.post("/operator/login", data={"login": "ops.sato", "password": PASSWORD})
        assert no_token.status_code == 403


def test_operator_sees_replica_health_and_reconciliation(hub: tuple[str, Path, Custody]) -> None:
    url, _, _ = hub
    with httpx.Client(base_url=url) as client:
        assert _log_in(client).status_code == 303
        page = client.get("/operator")
        assert page.status_code == 200 and "聖籠町" in page.text and "出雲崎町" in page.text
        assert "登録されている連携ボックスはありません" in page.text
        # started without the passphrase: a relay-only hub says it cannot show values
        conflicts = client.get("/operator/conflicts").text
        assert "中継のみで起動中" in conflicts and "確認が必要な同時編集はありません" in conflicts
        listing = client.get("/operator/reconcile")
        assert "15307-day2.json" in listing.text
        shown = client.get("/operator/reconcile", params={"file": "15307-day2.json"})
        assert "照合報告 聖籠町（15307）" in shown.text and "問題なし" in shown.text
        broken = client.get("/operator/reconcile", params={"file": "broken.json"})
        assert broken.status_code == 200 and "読めません" in broken.text
        assert client.get("/operator/reconcile", params={"file": "../hub.db"}).status_code == 404
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        assert client.post("/operator/logout", data={"csrf_token": "x"}).status_code == 403
        assert client.post("/operator/logout", data={"csrf_token": csrf}).status_code == 303
        assert client.get("/operator").status_code == 303


def test_intake_queue_lists_exports_the_boxes_handed_over(hub: tuple[str, Path, Custody]) -> None:
    url, _, custody = hub
    box_key = SigningKey.generate()
    sealed = _export("15307", box_key, custody.ring("15307"), "renkei-export-15307-1")
    with httpx.Client(base_url=url) as client:
        wrong = client.post("/api/exports/15405/renkei-export-15307-1", content=sealed)
        assert wrong.status_code == 400  # the file names another town
        assert client.post("/api/exports/15307/x", content=b"garbage").status_code == 400
        assert (
            client.post("/api/exports/15307/renkei-export-15307-1", content=sealed).status_code
            == 200
        )
        again = client.post("/api/exports/15307/renkei-export-15307-1", content=sealed)
        assert again.status_code == 200  # the same file sent twice is taken once
        other = _export("15307", box_key, custody.ring("15307"), "renkei-export-15307-1")
        replaced = client.post("/api/exports/15307/renkei-export-15307-1", content=other)
        assert replaced.status_code == 400  # nobody replaces a file the hub holds
        assert _log_in(client).status_code == 303
        page = client.get("/operator/intake")
    assert "renkei-export-15307-1" in page.text and "B01" in page.text
    assert "登録されていないため" in page.text  # an unenrolled box's file is not opened
    assert "秘密 花子" not in page.text
    rows = open_intake(sealed, custody.ring("15307"), box_key.verify_key)
    assert rows[0]["number"] == "U-15307-B01-000001"
    with pytest.raises(BlobError):  # another box's key: the signature does not verify
        open_intake(sealed, custody.ring("15307"), SigningKey.generate().verify_key)


def test_crawl_of_the_operator_screens(hub: tuple[str, Path, Custody]) -> None:
    """Every operator page and form, with garbage: no server error, Japanese only, and no
    resident of any town on screen."""
    from crawl import Crawl

    url, _, _ = hub
    with httpx.Client(base_url=url) as client:
        assert _log_in(client).status_code == 303
        crawl = Crawl(client, url, ["秘密 花子"], set())
        crawl.visit(
            [
                "/operator",
                "/operator/intake",
                "/operator/conflicts",
                "/operator/reconcile",
                "/operator/reconcile?file=%00",
            ]
        )
        # /alerts belongs to the alerts screens: leave it to their own tests.
        assert not [p for p in crawl.problems if not p.startswith("/alerts")], crawl.problems
        assert crawl.pages >= 5
