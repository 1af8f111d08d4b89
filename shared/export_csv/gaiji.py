"""Legacy 外字: the town's Private Use Area codes and what they become in Renkei.

A core system that predates Unicode IVS writes a town's own characters as BMP Private Use
Area codes (U+E000–U+F8FF; CP932 user-defined bytes F040–F9FC decode to U+E000–U+E757).
`gaiji.csv` maps each one: to a standard character (with a Moji_Joho selector where the
glyph needs one), to a 行政事務標準文字 code point in the supplementary Private Use planes
(U+F0000–U+10FFFD), or to itself, drawn from the town's own font. A legacy code with no
entry is never passed through silently: the clerk would see a wrong or blank glyph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.model import GaijiMapping

from .errors import GaijiError

LEGACY_FIRST = 0xE000
LEGACY_LAST = 0xF8FF


def is_legacy_gaiji(char: str) -> bool:
    """True for a BMP Private Use Area character (a legacy 外字 code)."""
    return LEGACY_FIRST <= ord(char) <= LEGACY_LAST


def is_supplementary_pua(char: str) -> bool:
    """True for Supplementary Private Use Area-A/B (where 行政事務標準文字 beyond MJ sit)."""
    code = ord(char)
    return 0xF0000 <= code <= 0xFFFFD or 0x100000 <= code <= 0x10FFFD


def gaiji_table(mappings: Iterable[GaijiMapping]) -> dict[str, str]:
    """Legacy character → replacement, as `apply_gaiji` takes it."""
    return {m.legacy: m.replacement for m in mappings}


def apply_gaiji(text: str, mapping: Mapping[str, str]) -> str:
    """Replace every legacy 外字 in `text` by its mapped sequence.

    Characters outside the BMP Private Use Area pass unchanged (including Moji_Joho
    selectors and 行政事務標準文字 already in the supplementary planes). A legacy character
    without an entry raises `GaijiError` naming its code point and index.
    """
    if not any(is_legacy_gaiji(c) for c in text):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if is_legacy_gaiji(char):
            try:
                out.append(mapping[char])
            except KeyError:
                raise GaijiError(char, index) from None
        else:
            out.append(char)
    return "".join(out)


def code_points(text: str) -> str:
    """`U+8FBB U+E0102`: how gaiji.csv writes a character sequence."""
    return " ".join(f"U+{ord(c):04X}" for c in text)
