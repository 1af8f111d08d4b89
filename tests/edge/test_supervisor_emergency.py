"""The emergency procedure and the visiting desk on a real host box: checklist ticks kept in
the audit log; a visiting clerk's session names both towns; a host clerk who looks for a
partner's resident is sent to the visiting desk; ending the emergency exports the
registers sealed to the town, revokes the activation and seals the town again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from box_roles import HOST, PARTNER, RoleBox, csrf, role_box
from nacl.signing import SigningKey
from test_box_processes import PASSWORD, _log_in

from edge.emergency_export import read_archive
from edge.exports import open_export
from shared.audit import box_writer_id, verify_town
from shared.blobs import BlobError
from shared.export_csv import read_town
from shared.storage import SqliteStorage


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[RoleBox]:
    with role_box(tmp_path_factory.mktemp("emergency"), small_export_dir) as running:
        yield running


def test_checklist_ticks_are_audited(box: RoleBox) -> None:
    with box.logged_in(HOST, box.logins["clerk"]) as clerk:
        page = clerk.get("/emergency", params={"case": "1"})
        assert page.status_code == 200 and "ケース1" in page.text
        assert 'action="/emergency/step"' not in page.text  # a clerk reads, does not tick
        refused = clerk.post(
            "/emergency/step",
            data={"csrf_token": csrf(page.text), "case": "1", "step": "0", "done": "1"},
        )
        assert refused.status_code == 403
    with box.logged_in(HOST, box.logins["supervisor"]) as client:
        page = client.get("/emergency", params={"case": "1"})
        ticked = client.post(
            "/emergency/step",
            data={"csrf_token": csrf(page.text), "case": "1", "step": "0", "done": "1"},
        )
        assert ticked.status_code == 303
        after = client.get("/emergency", params={"case": "1"})
        assert box.logins["supervisor"] in after.text and 'aria-pressed="true"' in after.text
    storage = SqliteStorage(box.root / "box" / "data" / "replica.db")
    try:
        key = SigningKey((box.root / "box" / "data" / "box.key").read_bytes())
        report = verify_town(
            storage, box.custody.ring(HOST), {box_writer_id(f"box-{HOST}"): key.verify_key}, {}
        )
    finally:
        storage.close()
    assert report.ok and report.kinds.get("emergency_step") == 1


def test_host_clerk_is_sent_to_the_visiting_desk(box: RoleBox, small_export_dir: Path) -> None:
    partner = next(r for r in read_town(small_export_dir / PARTNER).residents if r.removal is None)
    with box.logged_in(HOST, box.logins["clerk"]) as client:
        page = client.get("/", params={"q": f"出雲崎町 {partner.kana}"})
        assert page.status_code == 200 and "/visiting?town=15405" in page.text
        assert partner.name not in page.text
        sent = client.get(f"/resident/{partner.id}")
        assert sent.status_code == 303 and sent.headers["location"] == "/visiting?town=15405"
        desk = client.get("/visiting", params={"town": PARTNER})
        assert "出雲崎町" in desk.text and "/login?town=15405" in desk.text


def test_visiting_session_names_both_towns_and_ending_it_seals_the_town(box: RoleBox) -> None:
    visitor = box.visitors[0]
    activation = box.activate(visitor, box.logins["supervisor"])
    box.activate(box.deputy_login, box.logins["supervisor"])
    with box.logged_in(PARTNER, visitor) as client:
        page = client.get("/")
        assert "連携窓口" in page.text and "聖籠町" in page.text and "出雲崎町" in page.text
        assert "session away" in page.text
        assert client.get("/supervisor/clerks").status_code == 403  # a roster clerk only
        with box.logged_in(PARTNER, box.deputy_login) as deputy:
            form = deputy.get("/emergency", params={"case": "2"})
            assert form.status_code == 200
            ended = deputy.post(
                "/emergency/end", data={"csrf_token": csrf(form.text), "case": "2", "confirm": "1"}
            )
            assert ended.status_code == 200, ended.text[-800:]
            assert "終了しました" in ended.text and "取り消した利用開始：2件" in ended.text
            assert "intake.csv" in ended.text and "provisional-changes.csv" in ended.text
        assert client.get("/").status_code == 303  # the town was sealed: session over
        assert PARTNER not in client.get("/api/health").json()["open"]
    with box.client() as client:
        assert _log_in(client, PARTNER, visitor, PASSWORD).status_code == 403
    with box.logged_in(HOST, box.logins["supervisor"]) as host:
        page = host.get("/emergency")
        link = page.text.split('href="/emergency/exports/15405/')[1].split('"')[0]
        sealed = host.get(f"/emergency/exports/15405/{link}")
        assert sealed.status_code == 200
        assert host.get(f"/emergency/exports/15405/{link}x").status_code == 404
    with box.logged_in(HOST, box.logins["clerk"]) as clerk:
        assert clerk.get(f"/emergency/exports/15405/{link}").status_code == 403
    box_key = SigningKey((box.root / "box" / "data" / "box.key").read_bytes()).verify_key
    document, data = open_export(sealed.content, box.custody.ring(PARTNER), box_key)
    assert document.startswith("export\x1femergency\x1f")
    archive = read_archive(data, PARTNER)
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["town"] == PARTNER and manifest["host_town"] == HOST
    assert manifest["activations"] and activation.hex() in manifest["activations"]
    assert {"issuance-register.csv", "intake.csv", "intake.json"} <= set(manifest["files"])
    assert json.loads(archive.read("provisional-changes.json")) == []  # none recorded
    assert manifest["not_included"] == {}
    assert archive.read("issuance-register.csv").decode().startswith("発行番号")
    assert "受付番号" in archive.read("intake.csv").decode("utf-8-sig")
    with pytest.raises(BlobError):  # another town's keys open nothing
        open_export(sealed.content, box.custody.ring(HOST), box_key)
    with pytest.raises(ValueError):  # nor is another town's archive taken for this one
        read_archive(data, HOST)


def test_the_box_hands_the_export_to_the_hub(box: RoleBox) -> None:
    """Runs after the end of the emergency: the pull the end starts sends it."""
    deadline = time.monotonic() + 90
    while True:
        storage = SqliteStorage(box.root / "hub" / "hub.db")
        try:
            received = storage.load_range((PARTNER, "export-meta"))
        finally:
            storage.close()
        if received or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(received) == 1, received
    assert json.loads(received[0][1])["size"] > 0


def test_ending_case_1_seals_the_own_town(box: RoleBox) -> None:
    """Case 1 (line to the cloud down, own office): no activation to revoke; the end
    exports and seals the box's own town — every session of it ends."""
    with box.logged_in(HOST, box.logins["clerk"]) as clerk:
        with box.logged_in(HOST, box.logins["supervisor"]) as boss:
            form = boss.get("/emergency", params={"case": "1"})
            ended = boss.post(
                "/emergency/end", data={"csrf_token": csrf(form.text), "case": "1", "confirm": "1"}
            )
            assert ended.status_code == 200 and "聖籠町の緊急時運用を終了しました" in ended.text
            assert "取り消した利用開始：0件" in ended.text and "取り消せなかった" not in ended.text
        assert clerk.get("/").status_code == 303  # sealed: the clerk's session is over
        assert HOST not in clerk.get("/api/health").json()["open"]
    storage = SqliteStorage(box.root / "box" / "data" / "replica.db")
    try:
        assert storage.load_range((HOST, "export"))
    finally:
        storage.close()
