"""Reading the documents a box produced: the text (poppler's `pdftotext`), the 発行番号, the
「見本」 mark of a drill copy, and the glyph embedded for each Moji_Joho variation sequence
of a name, compared outline by outline with the glyph IPAmj明朝 maps the sequence to.

The glyph check follows each Type0 font of every page to its embedded FontFile2, maps
codes to Unicode through /ToUnicode and to glyph ids through /CIDToGIDMap (pypdf and
fontTools; the same way tests/printing/pdf_inspect.py does). A subset drops glyph names,
so the embedded glyph is identified by its outline.

`GlyphCheckUnavailable` says the check could not be run (a library or the font missing):
the row is then 未検証, never ○.
"""

# ruff: noqa: E501 — the evidence and report lines are Japanese sentences, kept whole for grep

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from renkei.drill.evidence import Check

IPAMJ = Path("/usr/share/fonts/truetype/ipamj/ipamjm.ttf")
_SELECTOR = re.compile("[\U000e0100-\U000e01ef]")
_NUMBER = re.compile(r"発行番号\s*[:：]?\s*(\S+)")

Outline = tuple[tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]


class GlyphCheckUnavailable(Exception):
    """The glyph check cannot run here (pypdf, fontTools or IPAmj明朝 missing)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pdf_text(pdf: bytes) -> str:
    if shutil.which("pdftotext") is None:
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    return out.stdout


def document_evidence(check: Check, label: str, number: str, pdf: bytes, seconds: float) -> str:
    """Note a produced document: its 発行番号 (from the download and from the page), size
    and sha256. Returns the text of the page."""
    text = pdf_text(pdf)
    printed = _NUMBER.search(text)
    on_page = printed.group(1) if printed else ""
    check.see(
        "document",
        f"{label} 発行番号 {number or on_page or '（なし）'}・{len(pdf):,} バイト・"
        f"sha256 {sha256(pdf)[:16]}…・検索→交付 {seconds:.2f} 秒",
        number=number, number_on_page=on_page, size=len(pdf), sha256=sha256(pdf),
        seconds=round(seconds, 3),
    )  # fmt: skip
    check.ok(pdf.startswith(b"%PDF-"), "PDF ではありません")
    check.ok(bool(number), "発行番号がありません")
    if text:
        check.ok("発行番号" in text, "紙面に発行番号がありません")
    return text


def is_sample(text: str) -> bool:
    """A drill copy: the 「見本」 mark and the drill notice on the page."""
    return "見本" in text and "訓練" in text


# ---------------------------------------------------------------------------- glyphs


@dataclass(frozen=True)
class GlyphFinding:
    cluster: str  # base character + variation selector
    expected: str  # IPAmj glyph name for the sequence
    embedded: int  # how many embedded glyphs stand for the cluster
    matches: int  # how many of them have the expected outline

    @property
    def ok(self) -> bool:
        return self.embedded > 0 and self.matches == self.embedded

    def describe(self) -> str:
        codes = " ".join(f"U+{ord(c):04X}" for c in self.cluster)
        return f"{self.cluster}（{codes}）→ 期待 {self.expected}: 埋込 {self.embedded}、一致 {self.matches}"


def variation_clusters(name: str) -> list[str]:
    """Each base character followed by a Moji_Joho selector in a name."""
    return [name[m.start() - 1 : m.end()] for m in _SELECTOR.finditer(name) if m.start() > 0]


def check_name_glyphs(pdf: bytes, name: str) -> list[GlyphFinding]:
    reference = _ipamj()
    findings = []
    embedded = _embedded(pdf)
    for cluster in variation_clusters(name):
        expected = _variation_glyph(reference, cluster)
        if expected is None:
            raise GlyphCheckUnavailable(f"IPAmj明朝に {cluster!r} の異体字がありません")
        want = _outline(reference, expected)
        standing = [o for text, o in embedded if text == cluster]
        findings.append(
            GlyphFinding(cluster, expected, len(standing), sum(o == want for o in standing))
        )
    return findings


def glyph_outline_in_font(font_bytes: bytes, cluster: str) -> bool | None:
    """Does a served web font map the sequence to IPAmj's outline? None: unreadable."""
    try:
        from fontTools.ttLib import TTFont

        font = TTFont(BytesIO(font_bytes))
        name = _variation_glyph(font, cluster)
        if name is None:
            return False
        return _outline(font, name) == _outline(_ipamj(), _variation_glyph(_ipamj(), cluster) or "")
    except Exception:
        return None


@cache
def _ipamj() -> Any:
    try:
        from fontTools.ttLib import TTFont
    except ImportError as exc:
        raise GlyphCheckUnavailable("fontTools がありません") from exc
    if not IPAMJ.exists():
        raise GlyphCheckUnavailable(f"{IPAMJ} がありません（fonts-ipamj-mincho）")
    return TTFont(str(IPAMJ), lazy=True)


def _variation_glyph(font: Any, cluster: str) -> str | None:
    base, selector = ord(cluster[0]), ord(cluster[-1])
    cmap = font["cmap"]
    for table in cmap.tables:
        if table.format == 14:
            for uv, glyph in table.uvsDict.get(selector, []):
                if uv == base:
                    return str(glyph) if glyph is not None else cmap.getBestCmap().get(base)
    return None


def _outline(font: Any, glyph_name: str) -> Outline:
    glyf = font["glyf"]
    coords, ends, flags = glyf[glyph_name].getCoordinates(glyf)
    return (
        tuple((int(x), int(y)) for x, y in coords),
        tuple(int(e) for e in ends),
        tuple(int(f) & 1 for f in flags),
    )


def _to_unicode(cmap: str) -> dict[int, str]:
    mapping = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, hexed in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[int(code, 16)] = bytes.fromhex(hexed).decode("utf-16-be")
    return mapping


def _embedded(pdf: bytes) -> list[tuple[str, Outline]]:
    """(text, outline) of every glyph embedded in the document's Type0 fonts."""
    try:
        from fontTools.ttLib import TTFont
        from pypdf import PdfReader
    except ImportError as exc:
        raise GlyphCheckUnavailable("pypdf / fontTools がありません") from exc
    found: dict[tuple[str, int], tuple[str, Outline]] = {}
    for page in PdfReader(BytesIO(pdf)).pages:
        resources: Any = page["/Resources"]
        for ref in resources.get("/Font", {}).values():
            font = ref.get_object()
            if font.get("/Subtype") != "/Type0":
                continue
            base = str(font["/BaseFont"])
            descendant = font["/DescendantFonts"][0].get_object()
            data = descendant["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
            ttfont = TTFont(BytesIO(data))
            cid_to_gid = descendant["/CIDToGIDMap"].get_object().get_data()
            unicode_map = _to_unicode(font["/ToUnicode"].get_object().get_data().decode())
            for code, text in unicode_map.items():
                gid = cid_to_gid[2 * code] << 8 | cid_to_gid[2 * code + 1]
                found[(base, code)] = (text, _outline(ttfont, ttfont.getGlyphName(gid)))
    return list(found.values())
