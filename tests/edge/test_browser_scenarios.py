"""The done-when's browser scenario: Debian's Chromium (Playwright) drives the real UI of a
real 聖籠町 box and hub (processes on loopback, the box over HTTPS), in this order:

1. a 聖籠町 clerk issues an own-town certificate (PDF download);
2. a request for a 支援措置 person by a third party is refused, explained in Japanese, and
   the person's own (本人) copy is issued;
3. a visiting 出雲崎町 clerk is refused without an activation;
4. the host supervisor types the short activation code a 出雲崎町 deputy signed, and the
   visiting clerk works in their own town's data, both towns named on screen;
5. break-glass by two 出雲崎町 roster clerks and the host supervisor lets a second
   visiting clerk in;
6. case 1: the hub stops; the screens say 未接続, the supervisor ticks the checklist and a
   clerk takes an application (申請受付) offline, receipt printed as a PDF; the supervisor
   records a provisional 転居 (暫定異動) and the person's certificate is held;
7. the hub comes back (its custody unsealed, the box enrolled): the application, sealed
   and kept on the box, reaches the hub at the box's next pull and appears in the hub
   operator's intake queue;
8. the supervisor ends the emergency: the town is sealed again and the end's export
   reaches the hub too.

One federation and one browser for the whole module; the tests run in file order.
Screenshots land in var/screenshots/scenario-*.png."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from box_roles import HOST, PARTNER, RoleBox, role_box
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from netns import CHROMIUM, CHROMIUM_ARGS
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from test_box_processes import PASSWORD

from cloud.app import hub_db_path
from cloud.enrolment import BoxRow, Registry, TokenRow, token_hash
from cloud.operators import add_operator
from edge.boxkey import box_code
from shared.activation import issue_activation
from shared.crypto import FederationRoot, issue_box_certificate
from shared.export_csv import read_town
from shared.model import TownExport
from shared.storage import SqliteStorage

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
HUB_PASSPHRASE = "hub passphrase for the browser scenario"
OPERATOR, OPERATOR_PASSWORD = "ops.scenario", "kumo no ue 連携ハブ scenario"
CONTACT = "090-8765-4321"
SEND_TO = "新潟県新潟市中央区学校町通1番町602番地1 避難先気付"


@dataclass
class Scenario:
    box: RoleBox
    browser: Browser
    seiro: TownExport
    izumozaki: TownExport
    pages: dict[str, Page] = field(default_factory=dict)
    hub: subprocess.Popen[bytes] | None = None
    intake_number: str = ""

    def page(self, who: str, *, js: bool = True) -> Page:
        if who not in self.pages:
            context: BrowserContext = self.browser.new_context(
                locale="ja-JP", ignore_https_errors=True, java_script_enabled=js
            )
            context.set_default_timeout(60_000)
            self.pages[who] = context.new_page()
        return self.pages[who]


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"scenario-{name}.png"), full_page=True)


def log_in(page: Page, url: str, town: str, login_id: str) -> None:
    """Fill the login form; retried when the per-account backoff after a refusal asks to
    wait (it says so on the page)."""
    for _ in range(6):
        page.goto(f"{url}/login", wait_until="load")
        page.select_option("#town", town)
        page.fill("#login_id", login_id)
        page.fill("#password", PASSWORD)
        with page.expect_navigation(wait_until="load"):
            page.click("button[type=submit]")
        if "秒待って" not in page.content():
            return
        time.sleep(2)


def _hub_pid(box: RoleBox) -> int:
    pattern = f"renkei hub --data {box.root / 'hub'} "
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    pids = [int(p) for p in found.split()]
    assert len(pids) == 1, (pattern, pids)
    return pids[0]


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[Scenario]:
    assert Path(CHROMIUM).exists(), "install Debian package 'chromium' (scripts/setup.sh)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("scenario")
    with role_box(root, small_export_dir) as box, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        scenario = Scenario(
            box, browser, read_town(small_export_dir / HOST),
            read_town(small_export_dir / PARTNER),
        )  # fmt: skip
        try:
            yield scenario
        finally:
            browser.close()
            if scenario.hub is not None and scenario.hub.poll() is None:
                scenario.hub.terminate()
                scenario.hub.wait(timeout=15)


def _free(town: TownExport) -> list[Any]:
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    return [r for r in town.residents if r.removal is None and r.id not in blocked]


def _issue(page: Page) -> bytes:
    """Submit the request form; the certificate comes back as a download."""
    with page.expect_download(timeout=120_000) as download:
        page.click("form[action='/issue'] button[type=submit]")
    return Path(download.value.path()).read_bytes()


def test_own_town_certificate(sc: Scenario) -> None:
    person = _free(sc.seiro)[0]
    page = sc.page("clerk")
    log_in(page, sc.box.url, HOST, sc.box.logins["clerk"])
    page.fill("#q", person.kana)
    with page.expect_navigation(wait_until="load"):
        page.press("#q", "Enter")
    assert person.name in page.locator("td.names").all_inner_texts()
    assert "ハブとの接続：接続中" in page.content()
    shot(page, "1-search")
    with page.expect_navigation(wait_until="load"):
        page.click(f"a[href='/resident/{person.id}']")
    page.fill("#applicant_name", person.name)
    shot(page, "1-request")
    pdf = _issue(page)
    assert pdf[:5] == b"%PDF-"


def test_support_block_refuses_a_third_party_and_serves_the_person(sc: Scenario) -> None:
    block = next(b for b in sc.seiro.support_blocks if b.protected_ids)
    person = next(r for r in sc.seiro.residents if r.id in block.protected_ids)
    page = sc.page("clerk")
    page.goto(f"{sc.box.url}/resident/{person.id}", wait_until="load")
    page.select_option("#requester", "第三者")
    page.fill("#applicant_name", "新潟 一郎")
    page.check("input[name=applicant_id][value='']")
    page.click("summary:has-text('第三者請求の場合')")
    page.select_option("#tp_ground", "その他正当な理由")
    page.fill("#tp_purpose", "債権回収")
    page.fill("#tp_submitted_to", "裁判所")
    with page.expect_navigation(wait_until="load"):
        page.click("form[action='/issue'] button[type=submit]")
    refused = page.content()
    shot(page, "2-support-block-refused")
    assert "この請求には交付できません" in refused, refused[-1500:]
    assert "対象者に支援措置があります" in refused
    # The protected person at the counter, with a photo ID: their own copy is issued.
    page.goto(f"{sc.box.url}/resident/{person.id}", wait_until="load")
    page.select_option("#requester", "本人")
    page.fill("#applicant_name", person.name)
    page.select_option("#identity", "顔写真付き書類1点")
    page.select_option("#documents", "運転免許証")
    shot(page, "2-support-block-self")
    assert _issue(page)[:5] == b"%PDF-"


def test_visiting_clerk_refused_without_activation(sc: Scenario) -> None:
    page = sc.page("visitor")
    log_in(page, sc.box.url, PARTNER, sc.box.visitors[0])
    shot(page, "3-refused-without-activation")
    assert "利用開始（アクティベーション）が必要です" in page.content()
    assert "/login" in page.url


def test_visiting_clerk_with_an_activation_code(sc: Scenario) -> None:
    now = time.time()
    activation = issue_activation(
        sc.box.deputy, host_town=HOST, host_box=f"box-{HOST}", clerks=[sc.box.visitors[0]],
        not_before=now - 120, expires_at=now + 3 * 3600,
    )  # fmt: skip
    boss = sc.page("supervisor")
    log_in(boss, sc.box.url, HOST, sc.box.logins["supervisor"])
    boss.goto(f"{sc.box.url}/activation", wait_until="load")
    boss.fill("#code", activation.to_code())
    with boss.expect_navigation(wait_until="load"):
        boss.click("button[value=accept]")
    shot(boss, "4-activation-accepted")
    assert "受け付けました" in boss.content()
    time.sleep(1.5)  # the visitor's refused login above left a short backoff
    page = sc.page("visitor")
    log_in(page, sc.box.url, PARTNER, sc.box.visitors[0])
    person = _free(sc.izumozaki)[0]
    page.goto(f"{sc.box.url}/?q={person.kana}", wait_until="load")
    text = page.content()
    shot(page, "4-visiting-search")
    assert "連携窓口" in text and "聖籠町" in text and "出雲崎町" in text
    assert person.name in page.locator("td.names").all_inner_texts()
    with page.expect_navigation(wait_until="load"):
        page.click(f"a[href='/resident/{person.id}']")
    page.fill("#applicant_name", person.name)
    assert _issue(page)[:5] == b"%PDF-"


def test_break_glass_lets_a_second_visitor_in(sc: Scenario) -> None:
    second = sc.box.visitors[1]
    page = sc.page("visitor2")
    log_in(page, sc.box.url, PARTNER, second)
    assert "利用開始（アクティベーション）が必要です" in page.content()
    boss = sc.page("supervisor")
    boss.goto(f"{sc.box.url}/activation/break-glass", wait_until="load")
    boss.select_option("#town", PARTNER)
    boss.fill("#hours", "1")
    boss.fill("#minutes", "0")
    boss.fill("#reason", "代表者と電話がつながらないため")
    boss.fill("#login_id_1", second)
    boss.fill("#password_1", PASSWORD)
    boss.fill("#login_id_2", sc.box.deputy_login)
    boss.fill("#password_2", PASSWORD)
    shot(boss, "5-break-glass-form")
    with boss.expect_navigation(wait_until="load"):
        boss.click("form[action='/activation/break-glass'] button[type=submit]")
    shot(boss, "5-break-glass-done")
    assert "未承認" in boss.content(), boss.content()[-1500:]
    time.sleep(1.5)
    log_in(page, sc.box.url, PARTNER, second)
    page.goto(f"{sc.box.url}/", wait_until="load")
    shot(page, "5-break-glass-visitor")
    assert "連携窓口" in page.content() and "出雲崎町" in page.content()


def test_case_1_hub_stopped_intake_offline(sc: Scenario) -> None:
    os.kill(_hub_pid(sc.box), signal.SIGTERM)
    page = sc.page("clerk")
    deadline = time.monotonic() + 120  # the box notices at its next pull
    while True:
        page.goto(f"{sc.box.url}/", wait_until="load")
        if "ハブとの接続：未接続" in page.content() or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert "ハブとの接続：未接続" in page.content()
    shot(page, "6-hub-stopped")
    boss = sc.page("supervisor")
    boss.goto(f"{sc.box.url}/emergency?case=1", wait_until="load")
    assert "ケース1" in boss.content()
    with boss.expect_navigation(wait_until="load"):
        boss.click("form[action='/emergency/step'] button >> nth=0")
    assert 'aria-pressed="true"' in boss.content()
    shot(boss, "6-case1-checklist")
    asker = _free(sc.seiro)[5]
    page.goto(f"{sc.box.url}/intake", wait_until="load")
    page.select_option("#kind", "certificate")
    page.select_option("#document", "kazei")
    if page.locator("#subject_name").count():
        page.fill("#subject_name", asker.name)
    page.fill("#applicant_name", asker.name)
    page.fill("#contact", CONTACT)
    page.fill("#send_to", SEND_TO)
    shot(page, "6-intake-form")
    with page.expect_download(timeout=120_000) as download:
        page.click("form[action='/intake'] button[type=submit]")
    assert Path(download.value.path()).read_bytes()[:5] == b"%PDF-"
    sc.intake_number = f"U-{HOST}-{box_code(sc.box.root / 'box' / 'data')}-000001"
    page.goto(f"{sc.box.url}/intake", wait_until="load")
    assert sc.intake_number in page.content()
    shot(page, "6-intake-list")


def _hub_exports(sc: Scenario, prefix: str, timeout: float = 150) -> list[str]:
    """Names of this town's exports the hub holds that start with `prefix`, waiting up
    to `timeout` for one (handed over by the pull the box starts when it seals one, or
    the first later pull that reaches the hub)."""
    deadline = time.monotonic() + timeout
    while True:
        storage = SqliteStorage(hub_db_path(sc.box.root / "hub"))
        try:
            names = [k[2] for k, _ in storage.load_range((HOST, "export-meta"))]
        finally:
            storage.close()
        found = [n for n in names if n.startswith(prefix)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(2)


def _operator_intake(sc: Scenario, tag: str) -> str:
    ops = sc.page("operator")
    if "/operator" not in ops.url or "/login" in ops.url:
        ops.goto(f"{sc.box.hub_url}/operator/login", wait_until="load")
        ops.fill("#login", OPERATOR)
        ops.fill("#password", OPERATOR_PASSWORD)
        with ops.expect_navigation(wait_until="load"):
            ops.click("button[type=submit]")
    ops.goto(f"{sc.box.hub_url}/operator/intake", wait_until="load")
    shot(ops, tag)
    return ops.content()


def test_a_supervisors_provisional_change_holds_the_persons_certificates(sc: Scenario) -> None:
    mover = _free(sc.seiro)[7]
    boss = sc.page("supervisor")
    boss.goto(f"{sc.box.url}/resident/{mover.id}", wait_until="load")
    with boss.expect_navigation(wait_until="load"):
        boss.click(f"a[href='/supervisor/provisional?subject={mover.id}']")
    boss.select_option("#kind", "move")
    boss.fill("#effective", time.strftime("%Y-%m-%d"))
    boss.fill("#new_address", "新潟県北蒲原郡聖籠町大字諏訪山 第一避難所")
    boss.fill("#reported_by", "長男 連携太郎")
    boss.fill("#reason", "避難所への転居。基幹系に接続できないため")
    boss.check("input[name=confirm]")
    shot(boss, "6-provisional-form")
    with boss.expect_navigation(wait_until="load"):
        boss.click("form[action='/supervisor/provisional'] button[type=submit]")
    assert "を記録しました" in boss.content(), boss.content()[-1500:]
    page = sc.page("clerk")
    page.goto(f"{sc.box.url}/resident/{mover.id}", wait_until="load")
    assert "暫定異動あり（転居" in page.content()
    page.fill("#applicant_name", mover.name)
    with page.expect_navigation(wait_until="load"):
        page.click("form[action='/issue'] button[type=submit]")
    shot(page, "6-provisional-held")
    assert "対象者について未処理の異動届があります" in page.content()


def test_offline_intake_appears_at_the_hub_after_reconnecting(sc: Scenario) -> None:
    handoff = f"renkei-intake-{sc.intake_number}"
    storage = SqliteStorage(sc.box.root / "box" / "data" / "replica.db")
    try:  # sealed and waiting on the box: the hub is still down
        assert storage.load((HOST, "export", handoff)) is not None
        assert storage.load((HOST, "export-sent", handoff)) is None
    finally:
        storage.close()
    # The hub comes back: its operator unseals the custody, and the box is enrolled.
    hub_data = sc.box.root / "hub"
    sc.box.custody.save(hub_data, HUB_PASSPHRASE)
    add_operator(hub_data, OPERATOR, OPERATOR_PASSWORD)
    box_key = SigningKey((sc.box.root / "box" / "data" / "box.key").read_bytes())
    registry = Registry(hub_db_path(hub_data))
    try:
        _enrol(registry, box_key)
    finally:
        registry.close()
    port = sc.box.hub_url.rsplit(":", 1)[1]
    with (sc.box.root / "hub-again.log").open("wb") as log:
        sc.hub = subprocess.Popen(
            [sys.executable, "-m", "renkei", "hub", "--data", str(hub_data), "--port", port],
            env={**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    arrived = _hub_exports(sc, "renkei-intake-")
    assert arrived == [handoff], (sc.box.root / "hub-again.log").read_text(errors="replace")[-2000:]
    queue = _operator_intake(sc, "7-hub-intake-after-reconnect")
    assert sc.intake_number in queue and "検証できません" not in queue, queue[-2000:]
    assert CONTACT not in queue and SEND_TO not in queue  # no personal data at the hub's screen
    page = sc.page("clerk")  # the box's screens say the hub is back
    deadline = time.monotonic() + 60
    while "ハブとの接続：接続中" not in page.content() and time.monotonic() < deadline:
        time.sleep(2)
        page.goto(f"{sc.box.url}/intake", wait_until="load")
    assert "ハブとの接続：接続中" in page.content()


def test_ending_the_emergency(sc: Scenario) -> None:
    boss = sc.page("supervisor")
    boss.goto(f"{sc.box.url}/emergency?case=1", wait_until="load")
    boss.check("input[name=confirm]")
    with boss.expect_navigation(wait_until="load"):
        boss.click("form[action='/emergency/end'] button[type=submit]")
    ended = boss.content()
    shot(boss, "8-emergency-ended")
    assert "聖籠町の緊急時運用を終了しました" in ended, ended[-1500:]
    assert "intake.csv（1件）" in ended and "provisional-changes.csv（1件）" in ended
    clerk = sc.page("clerk")
    clerk.goto(f"{sc.box.url}/", wait_until="load")
    assert "/login" in clerk.url  # the town was sealed again: the session is over
    # The end's export (every register, intake and 暫定異動) follows at the next pull.
    assert len(_hub_exports(sc, "renkei-export-")) == 1
    queue = _operator_intake(sc, "8-hub-intake-after-the-end")
    # in the hand-over and in the end's export, listed once: under the end's export
    rows = queue.count(f"<td>{sc.intake_number}</td>")
    assert rows == 1, queue[-2000:]
    assert f"{sc.intake_number} → 緊急時運用終了の引き渡しファイル" in queue, queue[-2000:]


def _enrol(registry: Registry, key: SigningKey) -> None:
    """Enrol the running box's own key the way `renkei enrol` leaves the registry, under
    a name of its own: the hub matches an export to it by the key's 発行番号 code."""
    name, now = "seiro-counter-1", datetime.now(UTC)
    cert = issue_box_certificate(
        FederationRoot.generate(), name, town=HOST,
        sealing_key=PrivateKey.generate().public_key, verify_key=key.verify_key,
        issued_at=now, expires_at=now + timedelta(days=365),
    )  # fmt: skip
    token = TokenRow(
        token_hash(name), name, HOST, time.time(), time.time() + 3600, None, None, None, None
    )
    registry.add_token(token)
    row = BoxRow(
        name, HOST, bytes(key.verify_key).hex(), f"peer-{name}", json.dumps(cert.to_json()),
        "", time.time(), None, None, None,
    )  # fmt: skip
    assert registry.consume_and_enrol(token, row, time.time())
