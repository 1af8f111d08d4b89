"""Capability: headless Debian Chromium driven by Playwright (Python, sync API).

Playwright uses /usr/bin/chromium (Debian package `chromium`); we never run
`playwright install`.  The page comes from a tiny HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-domain-reliability",
    "--no-pings",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
]

HEADING = "連携 市役所 窓口"
BODY = "住民票の写しを印刷しました。"
PAGE = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>連携テスト</title>
<style>body {{ font-family: "IPAexGothic", sans-serif; font-size: 24px; margin: 2em; }}</style>
</head><body><h1 id="h">{HEADING}</h1><p id="p">{BODY}</p></body></html>
""".encode()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def local_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="cap-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.capability
def test_playwright_headless_chromium_japanese_page(
    tmp_path: Path,
    local_page: str,
    need: Callable[[str, str], str],
    need_module: Callable[[str, str], object],
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"missing capability: {CHROMIUM} - install Debian package 'chromium' "
            "(scripts/setup.sh)",
            pytrace=False,
        )
    fc_list = need("fc-list", "fontconfig")
    ja_fonts = subprocess.run(
        [fc_list, ":lang=ja", "family"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    if "IPAexGothic" not in ja_fonts:
        pytest.fail(
            "missing capability: no IPAexGothic font (fc-list :lang=ja) - install "
            f"Debian package 'fonts-ipaexfont' (scripts/setup.sh); have:\n{ja_fonts}",
            pytrace=False,
        )
    need_module("playwright.sync_api", "playwright")
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "japanese.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 800, "height": 400})
            page.goto(local_page, wait_until="load", timeout=30_000)
            assert page.title() == "連携テスト"
            assert page.inner_text("#h") == HEADING
            assert page.inner_text("#p") == BODY
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 1000, "screenshot is suspiciously small"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
