"""Stand-in 外字 fonts built from IPAmj glyphs, for tests, the benchmark and demos.

No real 行政事務標準文字 font (MJ+ characters in the Supplementary Private Use Areas) and
no town's own 外字 font can be installed on this machine. To exercise the same code path
— a PUA code point drawn by a separate font file registered in `FontRegistry` — these
functions copy one IPAmj glyph per PUA code point into a small TrueType font whose cmap
maps only those code points. The glyphs are look-alikes chosen from the descriptions in
the synthetic 外字 tables, not the real characters: a real deployment puts the real font
files in $RENKEI_FONT_DIR (`gyosei.ttf`, `town-<code>.ttf`).
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from pathlib import Path

import uharfbuzz as hb
from fontTools.ttLib import TTFont
from fontTools.ttLib.tables._c_m_a_p import CmapSubtable

from printing.fonts import IPAMJ_MINCHO

# PUA code point -> (IPAmj base character, variation selector or None)
Source = tuple[str, int | None]

STANDIN_GYOSEI: dict[int, Source] = {
    0xF0A21: ("髙", None),  # 髙の異体（はしご高・口が目）
    0xF1C07: ("榮", None),  # 榮の異体（火が木）
    0xF0412: ("嶋", None),  # 嶋の異体（山が上）
}
STANDIN_TOWNS: dict[str, dict[int, Source]] = {
    "15307": {0xE002: ("﨑", 0xE0103)},  # 﨑の異体（山へんに立と可）
    "15405": {0xE001: ("濵", None)},  # 濵の異体（町独自の字形）
    "15581": {0xE003: ("澤", 0xE0102)},  # 澤の異体（村の旧システム字形）
}


def build_pua_font(
    path: Path, glyphs: Mapping[int, Source], *, family: str, source: Path = IPAMJ_MINCHO
) -> dict[int, str]:
    """Write a font mapping each PUA code point to a copy of an IPAmj glyph; returns the
    IPAmj glyph name used for each code point (what a glyph test expects to see)."""
    face = hb.Face(hb.Blob.from_file_path(str(source)))
    font = hb.Font(face)
    wanted: set[int] = set()
    names: dict[int, str] = {}
    for cp, (base, selector) in glyphs.items():
        gid = (
            font.get_variation_glyph(ord(base), selector)
            if selector is not None
            else font.get_nominal_glyph(ord(base))
        )
        if not gid:
            raise ValueError(f"IPAmj has no glyph for {base!r} {selector!r}")
        names[cp] = str(font.get_glyph_name(gid))
        wanted.add(ord(base))
        if selector is not None:
            wanted.add(selector)
    request = hb.SubsetInput()
    request.unicode_set.update(wanted)
    request.flags = hb.SubsetFlags.GLYPH_NAMES
    subset = hb.subset(face, request)
    ttfont = TTFont(BytesIO(bytes(subset.blob.data)))
    full = CmapSubtable.newSubtable(12)
    full.platformID, full.platEncID, full.language = 3, 10, 0
    full.cmap = dict(names)
    bmp = CmapSubtable.newSubtable(4)
    bmp.platformID, bmp.platEncID, bmp.language = 3, 1, 0
    bmp.cmap = {cp: name for cp, name in names.items() if cp <= 0xFFFF}
    ttfont["cmap"].tables = [bmp, full]
    for record in ttfont["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = family
        elif record.nameID == 6:
            record.string = family.replace(" ", "")
    path.parent.mkdir(parents=True, exist_ok=True)
    ttfont.save(str(path))
    return names


def build_standin_fonts(font_dir: Path) -> dict[str, dict[int, str]]:
    """`gyosei.ttf` and `town-<code>.ttf` in the layout `FontRegistry.from_directory`
    reads; returns {font file stem: {code point: IPAmj glyph name}}."""
    built = {
        "gyosei": build_pua_font(
            font_dir / "gyosei.ttf", STANDIN_GYOSEI, family="Renkei Standin Gyosei"
        )
    }
    for code, glyphs in STANDIN_TOWNS.items():
        built[f"town-{code}"] = build_pua_font(
            font_dir / f"town-{code}.ttf", glyphs, family=f"Renkei Standin Town {code}"
        )
    return built
