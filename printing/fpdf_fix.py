"""Keep Unicode variation selectors with their base character in fpdf2's text shaping.

Why: fpdf2 2.8.9 splits text into fragments wherever the Unicode script changes
(`FPDF._parse_chars` in fpdf/fpdf.py, which calls the module-level name
`get_unicode_script(text[0])` and starts a new fragment for any script other than
COMMON, UNKNOWN or the current one). Variation selectors (U+FE00–FE0F, U+E0100–E01EF)
have script "Inherited", so 辻 U+8FBB + U+E0102 becomes two fragments, each shaped on
its own by harfbuzz: the base gets its default glyph (IPAmj mj025761) and the selector is
dropped or crashes `shape_text`. Unicode (UAX #24) says an Inherited character takes the
script of the character before it.

Fix (the smallest one): replace the name `fpdf.fpdf.get_unicode_script` with a function
that reports INHERITED as COMMON. `_parse_chars` never starts a fragment at a COMMON
character, so the selector stays in its base's fragment and harfbuzz sees the whole
variation sequence (→ mj025760). Nothing else in fpdf2 calls that name except
`output()`, which calls its `cache_clear()`; the replacement is an `lru_cache` too.

Applied once, when this module is imported (`printing.canvas` imports it). `disabled()`
removes it for the test that shows the glyph check turn red without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import fpdf.fpdf as _fpdf_module
from fpdf.unicode_script import UnicodeScript
from fpdf.unicode_script import get_unicode_script as _upstream_get_unicode_script


@cache
def script_with_inherited_joined(char: str) -> UnicodeScript:
    """fpdf2's script lookup, except that Inherited (variation selectors, combining marks)
    counts as COMMON so it never starts a new fragment."""
    script = _upstream_get_unicode_script(char)
    return UnicodeScript.COMMON if script == UnicodeScript.INHERITED else script


PATCH_POINT = "get_unicode_script"  # the name FPDF._parse_chars looks up in fpdf.fpdf


def apply() -> None:
    if not hasattr(_fpdf_module, PATCH_POINT):  # upstream moved the lookup
        raise ImportError(f"fpdf.fpdf.{PATCH_POINT} not found: re-check printing/fpdf_fix.py")
    setattr(_fpdf_module, PATCH_POINT, script_with_inherited_joined)


def is_applied() -> bool:
    return getattr(_fpdf_module, PATCH_POINT) is script_with_inherited_joined


@contextmanager
def disabled() -> Iterator[None]:
    """Run with fpdf2's original segmentation (tests only: shows the fix matters)."""
    setattr(_fpdf_module, PATCH_POINT, _upstream_get_unicode_script)
    try:
        yield
    finally:
        apply()


apply()
