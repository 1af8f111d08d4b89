"""A crawl of a real box (hub and box processes, HTTPS) logged in as each role — clerk,
supervisor, representative, admin, and a visiting clerk of a partner town under an
activation — following every link and submitting every form with garbage values.

For every page reached it asserts: no server error; the page is Japanese (lang="ja",
Japanese text, and no English UI words in what a person reads); and nothing of another
town's residents (names or resident ids) appears. For each role, the screens it may not
use answer 403 (GET and POST), and another town's resident, printed copy or export is out
of reach by URL. Screenshots of the main screens land in var/screenshots/ when Debian's
Chromium and Playwright are installed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from box_roles import HOST, PARTNER, RoleBox, role_box
from crawl import GARBAGE, Crawl, page_text
from test_box_processes import PASSWORD, _log_in

from shared.model import TownExport

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[RoleBox]:
    with role_box(tmp_path_factory.mktemp("crawl"), small_export_dir) as running:
        running.activate(running.visitors[0], running.logins["supervisor"], hours=4)
        yield running


@pytest.fixture(scope="module")
def towns(small_exports: list[TownExport]) -> dict[str, TownExport]:
    return {e.town.code: e for e in small_exports}


def _markers(export: TownExport) -> list[str]:
    """What would show another town's residents: their ids and full names."""
    living = [r for r in export.residents]
    return [r.id for r in living] + [r.name for r in living if len(r.name) >= 4]


HOST_ROLES = ["clerk", "supervisor", "representative", "admin"]
FORBIDDEN = {
    "clerk": [
        "/supervisor",
        "/supervisor/clerks",
        "/supervisor/audit",
        "/supervisor/registers",
        "/supervisor/printers",
        "/supervisor/deputy",
        "/supervisor/modes",
        "/activation",
    ],
    "supervisor": [],
    "representative": [
        "/supervisor/clerks",
        "/supervisor/audit",
        "/supervisor/registers",
        "/supervisor/printers",
        "/activation",
    ],
    "admin": [
        "/supervisor/clerks",
        "/supervisor/audit",
        "/supervisor/registers",
        "/supervisor/deputy",
        "/supervisor/modes",
        "/activation",
    ],
    "visitor": [
        "/supervisor",
        "/supervisor/clerks",
        "/supervisor/audit",
        "/supervisor/registers",
        "/supervisor/printers",
        "/supervisor/deputy",
        "/supervisor/modes",
        "/activation",
    ],
}
POST_ONLY_FORBIDDEN = {"supervisor": ["/supervisor/modes", "/supervisor/deputy"]}


@pytest.mark.parametrize("role", [*HOST_ROLES, "visitor"])
def test_crawl_as_role(box: RoleBox, towns: dict[str, TownExport], role: str) -> None:
    own, other = (PARTNER, HOST) if role == "visitor" else (HOST, PARTNER)
    login = box.visitors[0] if role == "visitor" else box.logins[role]
    mine = next(r for r in towns[own].residents if r.removal is None)
    theirs = next(r for r in towns[other].residents if r.removal is None)
    foreign = _markers(towns[other]) + _markers(towns["15581"])
    logins = {c.login_id.split(".")[-1] for e in towns.values() for c in e.clerks}
    # The names of this machine's CUPS queues are data, not UI: the printer screen marks
    # them (<code>, translate="no"), so a queue another process adds mid-crawl is not
    # "English on screen" (a snapshot of the names taken here raced with such queues).
    with box.logged_in(own, login) as client:
        crawl = Crawl(client, box.url, foreign, logins)
        crawl.visit(
            [
                "/",
                f"/?q={mine.kana}",
                f"/?q={theirs.kana}",
                f"/?q={theirs.id}",
                f"/resident/{mine.id}",
                "/supervisor",
                "/emergency",
                "/emergency?case=1",
                "/emergency?case=2",
                "/emergency?case=3",
                "/visiting",
                "/districts",
                "/intake",
                "/activation",
                "/verify",
                f"/resident/{GARBAGE}",
                f"/?q={GARBAGE}",
                "/supervisor/registers?day=9999-99-99",
            ]
        )
        assert crawl.pages >= 10
        assert not crawl.problems, "\n".join(crawl.problems[:20])
        # Another town's data by URL: the resident, a search, a printed copy, an export.
        sent = client.get(f"/resident/{theirs.id}")
        assert sent.status_code in (303, 404) and theirs.name not in sent.text
        found = client.get("/api/search", params={"q": theirs.kana}).json()
        assert all(row["resident_id"].startswith(own) for row in found.get("results", []))
        assert client.get(f"/printed/{other}-B01-0000001.pdf").status_code in (400, 403, 404)
        assert client.get(f"/emergency/exports/{other}/x").status_code in (403, 404)
        # The screens this role may not use.
        token = client.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]
        for path in FORBIDDEN[role]:
            assert client.get(path).status_code == 403, (role, "GET", path)
            assert client.post(path, data={"csrf_token": token}).status_code in (403, 405), (
                role,
                "POST",
                path,
            )
        for path in POST_ONLY_FORBIDDEN.get(role, []):
            assert client.post(path, data={"csrf_token": token}).status_code == 403, (role, path)
    if role == "supervisor" and shutil.which("chromium"):
        _screenshots(box, login)


def _screenshots(box: RoleBox, login: str) -> None:
    """The main supervisor screens as a supervisor's browser shows them (loopback HTTPS:
    Chromium treats 127.0.0.1 as a secure origin, so the Secure cookie is sent)."""
    from netns import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright
    from test_box_processes import PASSWORD

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="ja-JP", ignore_https_errors=True)
            page = context.new_page()
            page.goto(f"{box.url}/login")
            page.fill("#login_id", login)
            page.fill("#password", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            for name in (
                "supervisor",
                "supervisor/clerks",
                "supervisor/audit",
                "supervisor/registers",
                "supervisor/modes",
                "supervisor/deputy",
                "supervisor/printers",
                "emergency?case=2",
                "visiting",
            ):
                page.goto(f"{box.url}/{name}")
                shot = SHOTS / f"supervisor-{name.replace('/', '-').replace('?', '-')}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 1000
        finally:
            browser.close()


def test_the_crawler_skips_data_marked_translate_no_but_reads_the_rest() -> None:
    """Without the mark, a queue name in an <option> is read as English on screen."""
    marked = '<select><option value="q" translate="no">renkei-Office_MFP-e4ddb243</option>'
    plain = '<select><option value="q">renkei-Office_MFP-e4ddb243</option></select><p>Submit</p>'
    assert "ddb" not in page_text(marked + "</select>") and "Office_MFP" not in page_text(marked)
    assert "ddb" in page_text(plain) and "Submit" in page_text(plain)


def test_crawl_without_login_and_a_visitor_without_activation(
    box: RoleBox, towns: dict[str, TownExport]
) -> None:
    """Nobody logged in — and a partner's roster clerk whose activation does not exist —
    reaches only the login, the visiting desk and the QR check, all Japanese, no data."""
    foreign = _markers(towns[HOST]) + _markers(towns[PARTNER]) + _markers(towns["15581"])
    logins: set[str] = set()  # no screen reachable here lists a CUPS queue
    protected = [
        "/",
        "/supervisor",
        "/supervisor/clerks",
        "/emergency",
        "/districts",
        "/intake",
        "/activation",
        f"/resident/{towns[HOST].residents[0].id}",
    ]
    with box.client() as client:
        crawl = Crawl(client, box.url, foreign, logins)
        crawl.visit(["/login", "/visiting", "/verify", *protected])
        assert not crawl.problems, "\n".join(crawl.problems[:20])
        for path in protected:
            response = client.get(path)
            assert response.status_code == 303 and "/login" in response.headers["location"]
        assert client.get("/api/search", params={"q": "ア"}).status_code == 401
        # A roster clerk of 出雲崎町 with no activation naming them: refused at the login.
        refused = _log_in(client, PARTNER, box.visitors[1], PASSWORD)
        assert refused.status_code == 403 and "利用開始" in refused.text
        assert client.get("/").status_code == 303
