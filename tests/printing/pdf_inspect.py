"""Reading produced PDFs in tests: text as poppler lays it out, and the glyphs embedded.

`embedded_glyphs` follows each Type0 font of every page to its CIDFontType2 descendant,
maps codes to Unicode through /ToUnicode and to glyph ids through /CIDToGIDMap, and
returns each glyph's outline from the embedded FontFile2 (fontTools). fpdf2's output
subsetting drops glyph names, so glyphs are identified by comparing outlines with the
source font's named glyphs (`ipamj_name_of`).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

from fontTools.ttLib import TTFont
from pypdf import PdfReader

from printing.fonts import IPAMJ_MINCHO
from printing.layout import Issue

IssueFactory = Callable[..., Issue]  # the `make_issue` fixture (conftest.py)
Outline = tuple[tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]


def pdftotext(pdf: bytes, *, layout: bool = True) -> list[str]:
    """Text of each page (`pdftotext -layout`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        args = ["pdftotext", *(["-layout"] if layout else []), str(path), "-"]
        out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    pages = out.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def outline(font: TTFont, glyph_name: str) -> Outline:
    glyf = font["glyf"]
    coords, ends, flags = glyf[glyph_name].getCoordinates(glyf)
    return (
        tuple((int(x), int(y)) for x, y in coords),
        tuple(int(e) for e in ends),
        tuple(int(f) & 1 for f in flags),
    )


@dataclass(frozen=True)
class EmbeddedGlyph:
    font: str  # BaseFont, e.g. /MPDFAA+IPAmjMincho
    text: str  # what /ToUnicode says the glyph stands for
    gid: int
    outline: Outline


def _to_unicode(cmap: str) -> dict[int, str]:
    mapping = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, hexed in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[int(code, 16)] = bytes.fromhex(hexed).decode("utf-16-be")
    return mapping


def embedded_glyphs(pdf: bytes) -> list[EmbeddedGlyph]:
    reader = PdfReader(BytesIO(pdf))
    found: dict[tuple[str, int], EmbeddedGlyph] = {}
    for page in reader.pages:
        fonts = page["/Resources"].get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            if font.get("/Subtype") != "/Type0":
                continue
            base = str(font["/BaseFont"])
            descendant = font["/DescendantFonts"][0].get_object()
            data = descendant["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
            ttfont = TTFont(BytesIO(data))
            cid_to_gid = descendant["/CIDToGIDMap"].get_object().get_data()
            for code, text in _to_unicode(
                font["/ToUnicode"].get_object().get_data().decode()
            ).items():
                gid = cid_to_gid[2 * code] << 8 | cid_to_gid[2 * code + 1]
                name = ttfont.getGlyphName(gid)
                found[(base, code)] = EmbeddedGlyph(base, text, gid, outline(ttfont, name))
    return list(found.values())


def glyphs_for(pdf: bytes, text: str) -> list[EmbeddedGlyph]:
    return [g for g in embedded_glyphs(pdf) if g.text == text]


@cache
def _ipamj() -> TTFont:
    return TTFont(str(IPAMJ_MINCHO), lazy=True)


def ipamj_outline(glyph_name: str) -> Outline:
    return outline(_ipamj(), glyph_name)


def ipamj_name_of(glyph: EmbeddedGlyph, candidates: list[str]) -> str | None:
    """Which of the candidate IPAmj glyphs the embedded glyph is (by outline)."""
    for name in candidates:
        if ipamj_outline(name) == glyph.outline:
            return name
    return None
