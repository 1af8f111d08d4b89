"""外字 on screen: the same glyphs as on paper, served to the browser as per-town web
fonts built from the fonts the certificates use.

Why: a terminal's own fonts cannot be trusted with a town's names — a browser without
IPAmj明朝 draws 葛󠄂 (U+845B U+E0102) as the plain 葛, and no terminal has a town's
own 外字 font. So the box serves, to the town's logged-in clerks only, subsets holding
exactly the characters of that town's names:

    /fonts/names-mj.ttf      IPAmj明朝: every name character, variation sequences kept
                             through cmap format 14 (harfbuzz's subsetter)
    /fonts/names-town.ttf    the town's 外字 font (U+E000–F8FF), when it has one
    /fonts/names-gyosei.ttf  the 行政事務標準文字 font (planes 15–16), when configured

and the pages declare them as one family, ``RenkeiNames``, split by unicode-range, for
every element of class ``names``. Names are shown through the town's 外字 table first
(`translate`), as the printer does, so screen and paper hold the same sequence. TTF, not
WOFF2: fontTools' WOFF2 writer needs brotli, and on a LAN the size does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.model import GaijiMapping

FACES = ("mj", "town", "gyosei")
UNICODE_RANGES = {
    "mj": "U+0-DFFF, U+F900-EFFFF",
    "town": "U+E000-F8FF",
    "gyosei": "U+F0000-10FFFD",
}


def gaiji_table(mappings: Iterable[GaijiMapping]) -> dict[int, str]:
    """Legacy PUA code → what is shown and printed (str.translate table)."""
    return {ord(m.legacy): m.replacement for m in mappings}


def build_faces(registry: Any, town_code: str, names: Iterable[str]) -> dict[str, bytes]:
    """The town's web fonts from a `printing.fonts.FontRegistry`: face → TTF bytes."""
    from printing.fonts import GYOSEI, MJ, is_bmp_pua, is_supplementary_pua, town_key

    chars = {ord(c) for name in names for c in name}
    pua = {c for c in chars if is_bmp_pua(c)}
    supplementary = {c for c in chars if is_supplementary_pua(c)}
    faces = {"mj": registry.face(MJ).subset(chars - pua - supplementary)}
    for face, key, wanted in (
        ("town", town_key(town_code), pua),
        ("gyosei", GYOSEI, supplementary),
    ):
        if wanted:
            try:
                faces[face] = registry.face(key).subset(wanted)
            except KeyError:  # the font is not configured on this box
                continue
    return faces
