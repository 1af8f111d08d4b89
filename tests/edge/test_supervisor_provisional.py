"""暫定異動 on a real box: only a supervisor records a provisional emergency change (転居,
死亡) for a resident; bad input is refused in Japanese and writes nothing; the change is
audited, sealed to the town (its address and reporter are nowhere in the box's files),
flagged on the resident's screen, holds back every certificate about the person (while a
neighbour's is still issued), and is in the export at the end of the emergency."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from box_roles import HOST, RoleBox, csrf, role_box
from nacl.signing import SigningKey

from edge.boxkey import box_code
from edge.emergency_export import read_archive
from edge.exports import open_export
from shared.audit import box_writer_id, verify_town
from shared.export_csv import read_town
from shared.model import TownExport
from shared.storage import SqliteStorage

NEW_ADDRESS = "新潟県新潟市中央区学校町通1番町602番地1 第二避難所"
REPORTER = "長男 連携太郎"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[RoleBox]:
    with role_box(tmp_path_factory.mktemp("provisional"), small_export_dir) as running:
        yield running


@pytest.fixture(scope="module")
def town(small_export_dir: Path) -> TownExport:
    return read_town(small_export_dir / HOST)


def _people(town: TownExport) -> list[str]:
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    return [r.id for r in town.residents if r.removal is None and r.id not in blocked]


def _issue(client: object, resident_id: str, name: str) -> str:
    page = client.get(f"/resident/{resident_id}")  # type: ignore[attr-defined]
    response = client.post("/issue", data={  # type: ignore[attr-defined]
        "csrf_token": csrf(page.text), "document": "juminhyo", "subject": resident_id,
        "requester": "本人", "applicant_name": name, "applicant_id": resident_id,
        "identity": "顔写真付き書類1点", "documents": "運転免許証", "output": "download",
    })  # fmt: skip
    return "PDF" if response.headers["content-type"] == "application/pdf" else response.text


def test_provisional_changes(box: RoleBox, town: TownExport) -> None:
    mover_id, deceased_id, neighbour_id = _people(town)[2:5]
    names = {r.id: r.name for r in town.residents}
    today = date.today().isoformat()
    form = {"subject": mover_id, "kind": "move", "effective": today,
            "new_address": NEW_ADDRESS, "reported_by": REPORTER,
            "reason": "避難所への転居。基幹系に接続できないため", "confirm": "1"}  # fmt: skip
    with box.logged_in(HOST, box.logins["clerk"]) as clerk:
        page = clerk.get("/supervisor/provisional")
        assert page.status_code == 403
        token = csrf(clerk.get("/").text)
        assert clerk.post("/supervisor/provisional", data={**form, "csrf_token": token}
                          ).status_code == 403  # fmt: skip
    with box.logged_in(HOST, box.logins["supervisor"]) as boss:
        page = boss.get("/supervisor/provisional", params={"subject": mover_id})
        assert page.status_code == 200 and f'value="{mover_id}"' in page.text
        token = csrf(page.text)
        future = (date.today() + timedelta(days=3)).isoformat()
        for bad, message in (
            ({"effective": future}, "未来の日付"),
            ({"new_address": ""}, "転居先の住所を入力してください"),
            ({"subject": "no-such-person"}, "宛名番号が記録にありません"),
            ({"kind": "marriage"}, "異動の種類"),
            ({"confirm": ""}, "確認するチェック"),
        ):
            refused = boss.post(
                "/supervisor/provisional", data={**form, **bad, "csrf_token": token}
            )
            assert refused.status_code == 400 and message in refused.text, (
                bad,
                refused.text[-600:],
            )
            assert "ありません。</p>" in refused.text  # nothing was recorded
        done = boss.post("/supervisor/provisional", data={**form, "csrf_token": token})
        first = f"P-{HOST}-{box_code(box.root / 'box' / 'data')}-000001"  # no serial was spent
        assert done.status_code == 200 and f"{first} を記録しました" in done.text
        assert NEW_ADDRESS in done.text
        death = boss.post("/supervisor/provisional", data={
            **form, "subject": deceased_id, "kind": "death", "new_address": "",
            "csrf_token": token})  # fmt: skip
        assert death.status_code == 200 and "-000002 を記録しました" in death.text
    with box.logged_in(HOST, box.logins["clerk"]) as clerk:
        shown = clerk.get(f"/resident/{mover_id}")
        assert "暫定異動あり（転居" in shown.text and first in shown.text
        assert NEW_ADDRESS not in shown.text  # the counter sees the flag, not the address
        assert "/supervisor/provisional?subject" not in shown.text  # a clerk cannot record
        held = _issue(clerk, mover_id, names[mover_id])
        assert "対象者について未処理の異動届があります" in held, held[-800:]
        dead = _issue(clerk, deceased_id, names[deceased_id])
        assert "対象者について未処理の死亡届があります" in dead, dead[-800:]
        assert _issue(clerk, neighbour_id, names[neighbour_id]) == "PDF"  # others unaffected
    # Sealed at rest: the address and the reporter are in none of the box's files.
    for path in (box.root / "box").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert NEW_ADDRESS.encode() not in blob and REPORTER.encode() not in blob, path
    # Audited in the town's chain.
    key = SigningKey((box.root / "box" / "data" / "box.key").read_bytes())
    storage = SqliteStorage(box.root / "box" / "data" / "replica.db")
    try:
        report = verify_town(
            storage, box.custody.ring(HOST), {box_writer_id(f"box-{HOST}"): key.verify_key}, {}
        )
    finally:
        storage.close()
    assert report.ok and report.kinds.get("provisional_change") == 2, report.summary()
    # The end of the emergency exports them for the core system.
    with box.logged_in(HOST, box.logins["supervisor"]) as boss:
        form_page = boss.get("/emergency", params={"case": "1"})
        ended = boss.post("/emergency/end", data={
            "csrf_token": csrf(form_page.text), "case": "1", "confirm": "1"})  # fmt: skip
        assert ended.status_code == 200 and "provisional-changes.csv（2件）" in ended.text
    storage = SqliteStorage(box.root / "box" / "data" / "replica.db")
    try:
        [(_, sealed)] = storage.load_range((HOST, "export"))
    finally:
        storage.close()
    _document, data = open_export(sealed, box.custody.ring(HOST), key.verify_key)
    archive = read_archive(data, HOST)
    changes = json.loads(archive.read("provisional-changes.json"))
    assert [(c["number"], c["kind"], c["subject_id"]) for c in changes] == [
        (first, "転居", mover_id), (first[:-1] + "2", "死亡", deceased_id)]  # fmt: skip
    assert changes[0]["new_address"] == NEW_ADDRESS and changes[1]["new_address"] == ""
    rows = list(
        csv.reader(io.StringIO(archive.read("provisional-changes.csv").decode("utf-8-sig")))
    )
    assert rows[0][:3] == ["番号", "記録日時", "種類"] and len(rows) == 3
