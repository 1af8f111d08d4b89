"""外字 in the browser, and the counter with JavaScript off: Debian's Chromium logs in to a
real box, searches a resident whose
name holds a Moji_Joho variation sequence (辻󠄂 = U+8FBB U+E0102, the one-dot form, a
legacy 外字 of the core system mapped by the town's table), and the name is drawn
from the town's web font the box serves — closer to IPAmj's variant glyph than to the
plain 辻 by a clear margin. With the box's fonts blocked, the same check fails: the
name's font is then no web font. With JavaScript disabled, search → request form → issue
ends in the PDF's download. Screenshots of the counter's screens land in
var/screenshots/."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from counter_federation import PASSWORD, CounterBox, counter_box
from netns import CHROMIUM, CHROMIUM_ARGS
from playwright.sync_api import Page, sync_playwright

from printing.fonts import IPAMJ_MINCHO, FontFace
from shared.export_csv import read_town

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

MEASURE = """async ([variant, plain, cluster]) => {
  const load = async (name, b64) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const face = new FontFace(name, bytes);
    await face.load();
    document.fonts.add(face);
  };
  await load('RefVariant', variant);
  await load('RefPlain', plain);
  await document.fonts.ready;
  const cell = [...document.querySelectorAll('td.names a')]
    .find(a => a.textContent.includes(cluster));
  cell.id = 'probe';
  const family = getComputedStyle(cell).fontFamily;
  const draw = (font, text) => {
    const canvas = document.createElement('canvas');
    canvas.width = 140; canvas.height = 140;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, 140, 140);
    ctx.fillStyle = '#000'; ctx.font = '120px ' + font; ctx.textBaseline = 'top';
    ctx.fillText(text, 10, 10);
    return ctx.getImageData(0, 0, 140, 140).data;
  };
  const diff = (a, b) => {
    let d = 0;
    for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]);
    return d / 255;
  };
  // The plain reference is the base character alone: drawn with its selector, Chromium
  // would fall back to a font that has the sequence and show the variant again.
  const base = String.fromCodePoint(cluster.codePointAt(0));
  const shown = draw(family, cluster), v = draw('RefVariant', cluster), p = draw('RefPlain', base);
  return {family, toVariant: diff(shown, v), toPlain: diff(shown, p), variantVsPlain: diff(v, p)};
}"""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[CounterBox]:
    with counter_box(tmp_path_factory.mktemp("webfont"), small_export_dir, {}) as box:
        yield box


def _log_in(page: Page, fed: CounterBox) -> None:
    page.goto(f"{fed.url}/login")
    page.select_option("#town", "15307")
    page.fill("#login_id", fed.clerk)
    page.fill("#password", PASSWORD)
    with page.expect_navigation(wait_until="load", timeout=60_000):
        page.click("button[type=submit]")


def _measure(page: Page, cluster: str, refs: tuple[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(MEASURE, [refs[0], refs[1], cluster])
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#probe"})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    result["platform_fonts"] = fonts
    # The name is drawn by a web font (the box's), not by whatever the terminal has.
    result["web_font"] = bool(fonts) and all(f["isCustomFont"] for f in fonts)
    return result


def test_names_render_with_the_towns_web_font(fed: CounterBox, small_export_dir: Path) -> None:
    town = read_town(small_export_dir / "15307")
    # A legacy 外字 of the core system, mapped on import to 辻 with the one-dot selector.
    cluster = next(g for g in town.gaiji if g.replacement.startswith("辻")).replacement
    person = next(r for r in town.residents if cluster in r.name and r.removal is None)
    ipamj = FontFace("ref", IPAMJ_MINCHO)
    base, selector = (ord(c) for c in cluster)
    refs = (
        base64.b64encode(ipamj.subset({base, selector})).decode(),  # draws the variant
        base64.b64encode(ipamj.subset({base})).decode(),  # draws the plain form
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="ja-JP", ignore_https_errors=True)
            page = context.new_page()
            _log_in(page, fed)
            page.goto(f"{fed.url}/?q={person.kana}", wait_until="load")
            seen = _measure(page, cluster, refs)
            page.screenshot(path=str(SHOTS / "counter-search-gaiji.png"), full_page=True)
            for name, url in (
                ("counter-request", f"/resident/{person.id}"),
                ("counter-request-tax", f"/resident/{person.id}?document=kazei"),
                ("counter-districts", "/districts"),
                ("counter-intake", "/intake"),
            ):
                page.goto(f"{fed.url}{url}", wait_until="load")
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
            # With JavaScript off: search → request form → issue → the PDF downloads.
            plain = browser.new_context(
                locale="ja-JP", ignore_https_errors=True, java_script_enabled=False
            )
            page = plain.new_page()
            _log_in(page, fed)
            page.goto(f"{fed.url}/?q={person.kana}", wait_until="load")
            with page.expect_navigation(wait_until="load"):
                page.click(f"a[href='/resident/{person.id}']")
            page.fill("#applicant_name", person.name)
            page.screenshot(path=str(SHOTS / "counter-request-nojs.png"), full_page=True)
            with page.expect_download(timeout=120_000) as download:
                page.click("form[action='/issue'] button[type=submit]")
            pdf = Path(download.value.path()).read_bytes()
            suggested = download.value.suggested_filename
            blocked = browser.new_context(locale="ja-JP", ignore_https_errors=True)
            blocked.route("**/fonts/**", lambda route: route.abort())
            page = blocked.new_page()
            _log_in(page, fed)
            page.goto(f"{fed.url}/?q={person.kana}", wait_until="load")
            without = _measure(page, cluster, refs)
        finally:
            browser.close()
    assert seen["variantVsPlain"] > 100, seen  # the two glyphs really differ
    assert seen["web_font"], seen
    assert seen["toVariant"] * 4 < seen["toPlain"], seen
    assert pdf[:5] == b"%PDF-" and suggested.startswith("juminhyo-")
    # Without the box's fonts the check fails: the name is not drawn by the web font.
    assert not without["web_font"], without
    for shot in ("counter-search-gaiji", "counter-request", "counter-districts"):
        assert (SHOTS / f"{shot}.png").stat().st_size > 1000
