"""The supervisor's screens on a real box (hub and box processes, HTTPS): clerks added,
reset, put on the roster and revoked in the town's worker with no other clerk's password;
職務代理 signed with the representative's own key; disaster mode switched only by a
representative; the audit view verifies the chains; registers and 日計表 after an issue;
the printer screen without CUPS queues."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from box_roles import HOST, RoleBox, csrf, role_box
from test_box_processes import PASSWORD, _log_in

from shared.export_csv import read_town

NEW_PASSWORD = "tsukimi dango 十五夜 lantern"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[RoleBox]:
    with role_box(tmp_path_factory.mktemp("supervisor"), small_export_dir) as running:
        yield running


def _post(client, path: str, **data: object):  # type: ignore[no-untyped-def]
    page = client.get(path)
    assert page.status_code == 200, page.text[-500:]
    return client.post(path, data={"csrf_token": csrf(page.text), **data})


def test_supervisor_manages_a_clerk_without_anyone_elses_password(box: RoleBox) -> None:
    supervisor = box.logins["supervisor"]
    with box.logged_in(HOST, supervisor) as client:
        page = client.get("/supervisor/clerks")
        assert page.status_code == 200 and box.logins["clerk"] in page.text
        weak = _post(
            client,
            "/supervisor/clerks",
            action="add",
            login_id="seiro.newcomer",
            name="新人 太郎",
            roles="clerk",
            password="password1",
        )
        assert weak.status_code == 400 and "パスワード" in weak.text
        added = _post(
            client,
            "/supervisor/clerks",
            action="add",
            login_id="seiro.newcomer",
            name="新人 太郎",
            roles="clerk",
            password=PASSWORD,
        )
        assert added.status_code == 200, added.text[-800:]
        assert "seiro.newcomer" in added.text and "ハブへ未送信" in added.text
    with box.logged_in(HOST, "seiro.newcomer") as newcomer:
        assert newcomer.get("/supervisor/clerks").status_code == 403  # a clerk, not a supervisor
    with box.logged_in(HOST, supervisor) as client:
        reset = _post(
            client,
            "/supervisor/clerks",
            action="reset",
            login_id="seiro.newcomer",
            password=NEW_PASSWORD,
        )
        assert reset.status_code == 200 and "再設定" in reset.text
        roster = _post(
            client, "/supervisor/clerks", action="roster", login_id="seiro.newcomer", on_roster="1"
        )
        assert roster.status_code == 200 and "緊急時名簿" in roster.text
    with box.client() as client:
        assert _log_in(client, HOST, "seiro.newcomer", PASSWORD).status_code == 401
        assert _log_in(client, HOST, "seiro.newcomer", NEW_PASSWORD).status_code == 303
    with box.logged_in(HOST, supervisor) as client:
        unknown = _post(client, "/supervisor/clerks", action="unlock", login_id="seiro.nobody")
        assert unknown.status_code == 400
        unlocked = _post(client, "/supervisor/clerks", action="unlock", login_id="seiro.newcomer")
        assert unlocked.status_code == 200 and "ロックを解除" in unlocked.text
        itself = _post(client, "/supervisor/clerks", action="revoke", login_id=supervisor)
        assert itself.status_code == 400
        revoked = _post(client, "/supervisor/clerks", action="revoke", login_id="seiro.newcomer")
        assert revoked.status_code == 200 and "取り消し" in revoked.text
    time.sleep(2)  # the failed login above left a short backoff
    with box.client() as client:
        assert _log_in(client, HOST, "seiro.newcomer", NEW_PASSWORD).status_code == 401


def test_only_a_representative_switches_disaster_mode(box: RoleBox) -> None:
    with box.logged_in(HOST, box.logins["supervisor"]) as client:
        page = client.get("/supervisor/modes")
        assert page.status_code == 200 and "代表者が行います" in page.text
        refused = client.post(
            "/supervisor/modes", data={"csrf_token": csrf(page.text), "disaster_mode": "1"}
        )
        assert refused.status_code == 403
    with box.logged_in(HOST, box.logins["soumu"]) as client:
        switched = _post(client, "/supervisor/modes", disaster_mode="1", fee_exemption="1")
        assert switched.status_code == 200 and "宣言中" in switched.text
        assert "適用中" in switched.text
        copay = _post(
            client,
            "/supervisor/modes",
            copay="1",
            copay_disaster="令和8年 試験の地震",
            copay_from="2026-11-26",
            copay_until="2027-02-28",
        )
        assert copay.status_code == 200 and "宣言中：令和8年 試験の地震" in copay.text
        wrong = _post(
            client,
            "/supervisor/modes",
            copay="1",
            copay_disaster="x",
            copay_from="2027-03-01",
            copay_until="2027-02-28",
        )
        assert wrong.status_code == 400
        off = _post(client, "/supervisor/modes")
        assert "宣言していません" in off.text and "試験の地震" not in off.text


def test_a_representative_appoints_an_acting_official(box: RoleBox) -> None:
    with box.logged_in(HOST, box.logins["supervisor"]) as client:
        page = client.get("/supervisor/deputy")
        assert page.status_code == 200 and "代表者が行います" in page.text
    with box.logged_in(HOST, box.logins["representative"]) as client:
        appointed = _post(
            client,
            "/supervisor/deputy",
            action="sign",
            name="代理 一郎",
            title="副町長",
            start="2026-04-01T09:00",
            acting_for_mayor="1",
        )
        assert appointed.status_code == 200, appointed.text[-800:]
        assert "代理 一郎" in appointed.text and "職務代理者" in appointed.text
        bad = _post(client, "/supervisor/deputy", action="code", code="ABCD-EFGH")
        assert bad.status_code == 400


def test_audit_view_verifies_the_towns_chains(box: RoleBox) -> None:
    with box.logged_in(HOST, box.logins["supervisor"]) as client:
        page = client.get("/supervisor/audit")
    assert page.status_code == 200
    assert "異常はありません" in page.text
    assert "ログイン" in page.text
    assert "ロック解除" in page.text and "unlock" not in page.text  # details in Japanese


def test_registers_and_daily_report_after_an_issue(box: RoleBox, small_export_dir: Path) -> None:
    town = read_town(small_export_dir / HOST)
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    person = next(r for r in town.residents if r.removal is None and r.id not in blocked)
    with box.logged_in(HOST, box.logins["supervisor"]) as client:
        request_page = client.get(f"/resident/{person.id}")
        assert request_page.status_code == 200
        form = {
            "csrf_token": csrf(request_page.text),
            "document": "juminhyo",
            "subject": person.id,
            "requester": "本人",
            "applicant_name": person.name,
            "applicant_id": person.id,
            "identity": "顔写真付き書類1点",
            "documents": "運転免許証",
            "output": "download",
        }
        issued = client.post("/issue", data=form)
        assert issued.headers["content-type"] == "application/pdf", issued.text[-800:]
        # Runs after the appointment above: the 認証者 is the acting official from then on.
        text = subprocess.run(
            ["pdftotext", "-layout", "-", "-"],
            input=issued.content,
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert "職務代理者" in text and "代理" in text.replace("職務代理者", ""), text[-600:]
        page = client.get("/supervisor/registers")
    assert page.status_code == 200
    assert "日計表" in page.text and "1</td>" in page.text  # one copy on the day's line


def test_printer_screen_lists_queues_or_says_there_are_none(box: RoleBox) -> None:
    with box.logged_in(HOST, box.logins["admin"]) as client:
        page = client.get("/supervisor/printers")
        assert page.status_code == 200 and "位置調整" in page.text
        sheet = client.get("/supervisor/printers/sheet")
        assert sheet.headers["content-type"] == "application/pdf"
        assert client.get("/supervisor/clerks").status_code == 403  # admin is not supervisor
