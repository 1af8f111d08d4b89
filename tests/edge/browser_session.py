"""Helper script run inside the "terminal" namespace by test_box_browser.py: a clerk's
browser (Debian's Chromium through Playwright) logs in to the box over HTTPS, searches,
and does it again with JavaScript disabled. Writes what it saw as JSON and screenshots.

    python browser_session.py URL TOWN LOGIN PASSWORD QUERY OUT_JSON SHOT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netns import CHROMIUM, CHROMIUM_ARGS
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright


def _wait_for(page: Any, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            page.goto(url, wait_until="load", timeout=10_000)
            return
        except PlaywrightError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _session(
    context: Any, url: str, town: str, login: str, password: str, query: str, shots: Path,
    tag: str,
) -> dict[str, Any]:
    page = context.new_page()
    _wait_for(page, f"{url}/login")
    page.screenshot(path=str(shots / f"{tag}-login.png"), full_page=True)
    page.select_option("#town", town)
    page.fill("#login_id", login)
    page.fill("#password", password)
    with page.expect_navigation(wait_until="load", timeout=60_000):
        page.click("button[type=submit]")
    page.fill("#q", query)
    with page.expect_navigation(wait_until="load", timeout=30_000):
        page.press("#q", "Enter")
    page.screenshot(path=str(shots / f"{tag}-search.png"), full_page=True)
    names = page.locator("td.names").all_inner_texts()
    return {"url": page.url, "names": names, "title": page.title(), "cookies": context.cookies()}


def main(url: str, town: str, login: str, password: str, query: str, out: str, shots: str) -> None:
    shot_dir = Path(shots)
    shot_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            with_js = browser.new_context(locale="ja-JP", ignore_https_errors=False)
            result["js"] = _session(with_js, url, town, login, password, query, shot_dir, "js")
            no_js = browser.new_context(
                locale="ja-JP", ignore_https_errors=False, java_script_enabled=False
            )
            result["no_js"] = _session(no_js, url, town, login, password, query, shot_dir, "nojs")
        finally:
            browser.close()
    Path(out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:8])
