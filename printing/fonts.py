"""Fonts for exact glyphs: which font draws each character, coverage checks, subsets.

Roles and the fonts behind them (BRIEF §3 Printing):

    NAME    IPAmj明朝 (Moji_Joho IVS, 𠮷 and the rest of MJ): names, exactly
    BODY    IPAex明朝 for other text; falls back to IPAmj for what IPAex lacks (𠮷)
    GOTHIC  IPAexゴシック for headings; same fallback
    Private Use Area:
      U+E000–F8FF (BMP)          the town's own 外字 font (one per town code)
      U+F0000–10FFFD (planes 15–16)  the 行政事務標準文字 font (MJ+), then the town font

A character (a *cluster*: base plus an optional variation selector) is drawn by the first
font of its list that has a glyph for exactly that sequence; for a variation sequence the
font must map it in its cmap format 14 (IPAmj has Moji_Joho selectors from U+E0102, not
Adobe-Japan1's U+E0100). Otherwise `MissingGlyph` is raised: an alert, never a substitute.

Costs (see docs/printing.md for measurements): faces are opened once per process from the
font files (harfbuzz maps the file, ≈0.2 ms); a document embeds per-font subsets made by
harfbuzz's subsetter (≈1–5 ms) instead of letting fpdf2 parse and subset the 46 MB IPAmj
with fontTools (0.7–1.4 s). `open_town` checks every name and address of a town when it
opens, so a missing 外字 is an alert before anyone is waiting at the counter, and builds
the town's IPAmj subset (the same glyphs for the web UI).

No real 行政事務標準文字 font can be installed here: `FontRegistry` takes its path (and
each town's font) from configuration; tests build small stand-in fonts from IPAmj glyphs.
"""

from __future__ import annotations

import enum
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import uharfbuzz as hb

from printing.errors import FontUnavailable, GlyphAlert, MissingGlyph
from shared.model import GaijiMapping

IPAMJ_MINCHO = Path("/usr/share/fonts/truetype/ipamj/ipamjm.ttf")
IPAEX_MINCHO = Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf")
IPAEX_GOTHIC = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
FONT_DIR_ENV = "RENKEI_FONT_DIR"  # holds gyosei.ttf and town-<code>.ttf

MJ = "mj"
EX = "ex"
EXG = "exg"
GYOSEI = "gyosei"


def _tag(name: str) -> int:
    return int.from_bytes(name.encode("ascii"), "big")


_DROPPED_TABLES = {
    _tag(t)
    for t in ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "vhea", "vmtx", "VORG", "kern", "hdmx")
}


def town_key(town_code: str) -> str:
    return f"town-{town_code}"


class FontRole(enum.StrEnum):
    NAME = "name"
    BODY = "body"
    GOTHIC = "gothic"


def is_variation_selector(cp: int) -> bool:
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def is_bmp_pua(cp: int) -> bool:
    return 0xE000 <= cp <= 0xF8FF


def is_supplementary_pua(cp: int) -> bool:
    return 0xF0000 <= cp <= 0xFFFFD or 0x100000 <= cp <= 0x10FFFD


_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def clusters(text: str) -> Iterator[str]:
    """Base characters with the variation selectors that follow them."""
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not is_variation_selector(ord(text[i])):
            yield text[start:i]
            start = i


class FontFace:
    """One font file opened with harfbuzz: glyph lookup, advances and subsetting."""

    def __init__(self, key: str, path: Path) -> None:
        if not path.is_file():
            raise FontUnavailable(f"font {key}: {path} does not exist")
        self.key = key
        self.path = path
        self.face = hb.Face(hb.Blob.from_file_path(str(path)))
        if self.face.glyph_count == 0:
            raise FontUnavailable(f"font {key}: {path} has no glyphs (not a font?)")
        self.font = hb.Font(self.face)
        self.upem = int(self.face.upem)
        self._lock = threading.Lock()  # hb objects are not documented thread-safe

    def glyph(self, cluster: str) -> int | None:
        """Glyph id for a cluster, or None; 0 (.notdef) counts as missing."""
        base = ord(cluster[0])
        with self._lock:
            if len(cluster) == 1:
                gid = self.font.get_nominal_glyph(base)
            elif len(cluster) == 2:
                gid = self.font.get_variation_glyph(base, ord(cluster[1]))
            else:
                return None  # two selectors on one base: no font maps that
        return gid or None

    def advance_em(self, gid: int) -> float:
        with self._lock:
            return float(self.font.get_glyph_h_advance(gid)) / self.upem

    def glyph_name(self, gid: int) -> str:
        with self._lock:
            return str(self.font.get_glyph_name(gid) or "")

    def subset(self, codepoints: Iterable[int]) -> bytes:
        """A subset holding these characters and, through cmap format 14, the variation
        sequences among them; glyph names kept for debugging."""
        request = hb.SubsetInput()
        request.unicode_set.update(codepoints)
        request.flags = hb.SubsetFlags.GLYPH_NAMES
        # Horizontal Japanese text needs no OpenType layout: variation sequences resolve
        # through cmap format 14, which stays. Dropping these spares fontTools (inside
        # fpdf2's output) decompiling and recompiling them for every document.
        request.drop_table_tag_set.update(_DROPPED_TABLES)
        with self._lock:
            result = hb.subset(self.face, request)
        if result is None:
            raise FontUnavailable(f"harfbuzz could not subset {self.path}")
        return bytes(result.blob.data)


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive clusters drawn with one font. `shaped` runs hold a variation selector
    and must go through harfbuzz shaping (the only cells fpdf2 shapes)."""

    font_key: str
    text: str
    width_em: float
    shaped: bool


@dataclass(slots=True)
class TownFonts:
    """What `open_town` found: alerts for characters without a glyph, and the town's
    IPAmj subset (also served to the web UI so screen and paper show one glyph)."""

    town_code: str
    alerts: list[GlyphAlert] = field(default_factory=list)
    name_subset: bytes = b""


class FontRegistry:
    """Fonts of one process: opened once, shared by every document and town."""

    def __init__(
        self,
        *,
        name_font: Path = IPAMJ_MINCHO,
        body_font: Path = IPAEX_MINCHO,
        gothic_font: Path = IPAEX_GOTHIC,
        gyosei_font: Path | None = None,
        town_fonts: Mapping[str, Path] | None = None,
    ) -> None:
        self._faces: dict[str, FontFace] = {
            MJ: FontFace(MJ, name_font),
            EX: FontFace(EX, body_font),
            EXG: FontFace(EXG, gothic_font),
        }
        if gyosei_font is not None:
            self.register_gyosei_font(gyosei_font)
        for code, path in (town_fonts or {}).items():
            self.register_town_font(code, path)
        self._cache: dict[tuple[str, FontRole, str], tuple[str, float]] = {}
        self._gaiji: dict[str, dict[int, str]] = {}
        self._runs: dict[tuple[str, FontRole, str], list[Run]] = {}

    @classmethod
    def from_directory(cls, font_dir: Path | None) -> FontRegistry:
        """System fonts plus `gyosei.ttf` and `town-<code>.ttf` from `font_dir`."""
        registry = cls()
        if font_dir is not None and font_dir.is_dir():
            gyosei = font_dir / "gyosei.ttf"
            if gyosei.is_file():
                registry.register_gyosei_font(gyosei)
            for path in sorted(font_dir.glob("town-*.ttf")):
                registry.register_town_font(path.stem.removeprefix("town-"), path)
        return registry

    def register_gaiji(self, mappings: Iterable[GaijiMapping]) -> None:
        """A town's 外字 table: each legacy PUA character the core system writes is
        printed as its replacement (a Unicode sequence with IVS, a 行政事務標準文字 code,
        or itself for the town font)."""
        for m in mappings:
            self._gaiji.setdefault(m.town_code, {})[ord(m.legacy)] = m.replacement
        self._runs = {}

    def translate(self, text: str, town_code: str) -> str:
        table = self._gaiji.get(town_code)
        return text.translate(table) if table else text

    def register_gyosei_font(self, path: Path) -> None:
        self._faces[GYOSEI] = FontFace(GYOSEI, path)
        self._cache, self._runs = {}, {}

    def register_town_font(self, town_code: str, path: Path) -> None:
        key = town_key(town_code)
        self._faces[key] = FontFace(key, path)
        self._cache, self._runs = {}, {}

    def face(self, key: str) -> FontFace:
        return self._faces[key]

    def font_path(self, key: str) -> Path:
        return self._faces[key].path

    def _candidates(self, cp: int, role: FontRole, town_code: str) -> tuple[str, ...]:
        if is_bmp_pua(cp):
            return (town_key(town_code),)
        if is_supplementary_pua(cp):
            return (GYOSEI, town_key(town_code))
        if role is FontRole.NAME:
            return (MJ,)
        return (EXG if role is FontRole.GOTHIC else EX, MJ)

    def _lookup(
        self, cluster: str, role: FontRole, town_code: str, context: str
    ) -> tuple[str, float]:
        cached = self._cache.get((cluster, role, town_code))
        if cached is not None:
            return cached
        for key in self._candidates(ord(cluster[0]), role, town_code):
            face = self._faces.get(key)
            gid = face.glyph(cluster) if face is not None else None
            if face is not None and gid is not None:
                found = (key, face.advance_em(gid))
                self._cache[(cluster, role, town_code)] = found
                return found
        raise MissingGlyph(town_code, cluster, context)

    def runs(self, text: str, role: FontRole, town_code: str) -> list[Run]:
        """Split `text` into font runs; MissingGlyph if any cluster has no exact glyph.
        Cached: a list repeats the same cell values thousands of times."""
        key = (text, role, town_code)
        cached = self._runs.get(key)
        if cached is not None:
            return cached
        result = self._split(text, role, town_code)
        if len(self._runs) > 200_000:
            self._runs.clear()
        self._runs[key] = result
        return result

    def _split(self, text: str, role: FontRole, town_code: str) -> list[Run]:
        runs: list[Run] = []
        key = ""
        parts: list[str] = []
        width = 0.0
        shaped = False
        pieces = clusters(text) if _SELECTORS.search(text) else text
        for cluster in pieces:
            cluster_key, advance = self._lookup(cluster, role, town_code, text)
            if cluster_key != key and parts:
                runs.append(Run(key, "".join(parts), width, shaped))
                parts, width, shaped = [], 0.0, False
            key = cluster_key
            parts.append(cluster)
            width += advance
            shaped = shaped or len(cluster) > 1
        if parts:
            runs.append(Run(key, "".join(parts), width, shaped))
        return runs

    def check(self, texts: Iterable[str], role: FontRole, town_code: str) -> list[GlyphAlert]:
        """Alerts for every text that cannot be drawn exactly (no exception)."""
        alerts: list[GlyphAlert] = []
        for text in texts:
            try:
                self.runs(text, role, town_code)
            except MissingGlyph as exc:
                alerts.append(exc.alert)
        return alerts

    def open_town(
        self,
        town_code: str,
        names: Iterable[str],
        other: Iterable[str] = (),
        gaiji: Iterable[GaijiMapping] = (),
    ) -> TownFonts:
        """Register the town's 外字 table, check its names (NAME role) and other texts
        (BODY) when the town opens, and build its IPAmj subset."""
        self.register_gaiji(gaiji)
        names = [self.translate(name, town_code) for name in names]
        other = [self.translate(text, town_code) for text in other]
        result = TownFonts(town_code)
        result.alerts = self.check(names, FontRole.NAME, town_code) + self.check(
            other, FontRole.BODY, town_code
        )
        codepoints = {
            ord(c) for name in names for c in name if not is_bmp_pua(ord(c)) and c.isprintable()
        }
        result.name_subset = self._faces[MJ].subset(codepoints)
        return result


@lru_cache(maxsize=1)
def default_registry() -> FontRegistry:
    """The process's registry: system fonts plus those in $RENKEI_FONT_DIR."""
    configured = os.environ.get(FONT_DIR_ENV)
    return FontRegistry.from_directory(Path(configured) if configured else None)
