"""Search-key normalisation for Japanese names and addresses.

Why this module exists
----------------------
A clerk looking for a resident rarely has the registered spelling in front of
them.  They hear a name read aloud (so they type kana, maybe in hiragana, maybe
with a long-vowel mark the register does not use), or they copy it from a
damaged card (so they type the common form 斎藤 for a register that says 齋藤,
or 辻 for a register that stores 辻 with an Ideographic Variation Sequence).

The index therefore stores *keys*, not names.  A key is a deliberately lossy
projection: two spellings a clerk would consider "the same person" must map to
the same key.  Losing information is fine here because the exact original
(including variation selectors, for printing certificates) is stored
elsewhere; these keys are only ever compared with each other.

Every function here is pure, total (never raises for any ``str``) and
idempotent, so a key can be re-normalised safely (e.g. after a table update,
re-keying old rows with the new table gives the same result as keying the
original text).

Public API
----------
- :func:`strip_variation_selectors`, :func:`has_variation_selector`
- :func:`fold_kanji` — selectors, compatibility ideographs, 異体字 table
- :func:`fold_width` — full-width ASCII / half-width katakana to canonical width
- :func:`fold_kana` — compact katakana key for readings
- :func:`name_key`, :func:`kana_key`, :func:`address_key`
- :func:`is_kana`
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

__all__ = [
    "ITAIJI_TABLE",
    "address_key",
    "fold_kana",
    "fold_kanji",
    "fold_width",
    "has_variation_selector",
    "is_kana",
    "kana_key",
    "name_key",
    "strip_variation_selectors",
]

# ---------------------------------------------------------------------------
# Variation selectors
# ---------------------------------------------------------------------------

# VS1-VS16 (U+FE00-FE0F) and VS17-VS256 (U+E0100-E01EF).  Japanese registry
# systems use the latter in Ideographic Variation Sequences (Moji-Joho / Hanyo-
# Denshi collections) to pin down one glyph of e.g. 辻 (one or two dots).  The
# glyph matters on a printed certificate, never for finding the person.
_VS_RANGES: Final = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
_VS_DELETE: Final[dict[int, None]] = {cp: None for lo, hi in _VS_RANGES for cp in range(lo, hi + 1)}
_VS_RE: Final = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def strip_variation_selectors(s: str) -> str:
    """Remove all variation selectors (U+FE00-FE0F, U+E0100-E01EF) from *s*."""
    return s.translate(_VS_DELETE)


def has_variation_selector(s: str) -> bool:
    """True if *s* contains any variation selector.

    Useful to warn that a name will print with a specific glyph that the
    search key does not distinguish.
    """
    return _VS_RE.search(s) is not None


# ---------------------------------------------------------------------------
# Kanji folding
# ---------------------------------------------------------------------------

# 異体字 (variant characters) folded to one representative for search.
#
# Source of the choices: the pairs are the 旧字体/新字体 and 俗字 relations
# listed in the Jōyō Kanji table (常用漢字表, 2010, 括弧内の旧字体), the
# Jinmeiyō list (人名用漢字, whose 異体字 pairs are explicitly "the same
# character" for family-register purposes), and the variant groups most often
# cited by municipal 住基 vendors as causing missed searches (斎/齋/齊/斉,
# 辺/邊/邉, 髙, 﨑 ...).  The representative is the form a clerk is most likely
# to type with a standard IME, which is usually the Jōyō/新字体 form.
#
# Deliberate judgement calls (search recall over orthographic purity):
# - 齊/斉 ("sei") are strictly a different character from 斎/齋 ("sai"), but
#   the surnames 斉藤/斎藤 are confused constantly in practice, so all four fold
#   to 斎.
# - 籠 (Jōyō) is the representative over the common 篭: the town name
#   聖籠町 is officially written with 籠.
# - 槙 is the representative over 槇 (both Jinmeiyō; 槙 is the IME default).
# - 碕 and 嵜 are separate code points used in place of 崎 in surnames.
# - 𠮷 (U+20BB7, 土 on top) folds to 吉 *for search only*; the original is
#   printed from the stored exact text.
# Unknown or uncertain variants are left alone rather than guessed.  Private
# Use Area characters (legacy 外字) are never touched: their meaning depends on
# the vendor table they came from.
#
# Invariant (checked by the tests): no representative is itself a key, so
# folding is idempotent.
_ITAIJI_GROUPS: Final[tuple[tuple[str, str], ...]] = (
    # (representative, variants)
    ("斎", "齋齊斉"),
    ("辺", "邊邉"),
    ("高", "髙"),
    ("崎", "\ufa11碕嵜"),  # U+FA11 﨑 has no NFKC decomposition, see below
    ("浜", "濱"),
    ("沢", "澤"),
    ("桜", "櫻"),
    ("広", "廣"),
    ("国", "國"),
    ("槙", "槇"),
    ("島", "嶋嶌"),
    ("真", "眞"),
    ("籠", "篭"),
    ("竜", "龍"),
    ("村", "邨"),
    ("富", "冨"),
    ("徳", "德"),
    ("恵", "惠"),
    ("蔵", "藏"),
    ("実", "實"),
    ("寿", "壽"),
    ("瀬", "瀨"),
    ("曽", "曾"),
    ("条", "條"),
    ("万", "萬"),
    ("児", "兒"),
    ("会", "會"),
    ("騨", "驒"),
    ("吉", "\U00020bb7"),  # 𠮷 (つちよし)
    # Further unambiguous 旧字体 -> 新字体 pairs common in names and addresses.
    ("黒", "黑"),
    ("浅", "淺"),
    ("渋", "澁"),
    ("団", "團"),
    ("与", "與"),
    ("鉄", "鐵"),
    ("豊", "豐"),
    ("礼", "禮"),
    ("静", "靜"),
    ("栄", "榮"),
    ("戸", "戶"),
    ("来", "來"),
    ("稲", "稻"),
    ("増", "增"),
    ("横", "橫"),
    ("円", "圓"),
    ("県", "縣"),
    ("関", "關"),
)

ITAIJI_TABLE: Final[Mapping[str, str]] = {
    variant: rep for rep, variants in _ITAIJI_GROUPS for variant in variants
}
"""Variant -> representative, the single source of truth for 異体字 folding."""


def _is_cjk_ideograph(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
    )


def _build_kanji_map() -> dict[int, str | None]:
    """Build the complete per-code-point translation table for fold_kanji.

    Compatibility ideographs (U+F900-FAFF, U+2F800-2FA1F) have *canonical*
    singleton decompositions, so NFC maps them to the unified ideograph -
    except the twelve "unified" ones in the compatibility block (U+FA0E,
    FA0F, FA11, FA13, FA14, FA1F, FA21, FA23, FA24, FA27-FA29), which are
    genuine unified ideographs with no decomposition.  Of those only 﨑
    (U+FA11) has a well-known ordinary equivalent, handled by ITAIJI_TABLE.

    Kangxi radicals (U+2F00-2FDF) and CJK radical supplements (U+2E80-2EFF)
    have NFKC decompositions to ideographs; OCR of damaged cards and some
    PDF copy/paste produce them, so they are folded too.

    We deliberately do not NFKC the whole string: that would also rewrite ㈱,
    circled digits, widths and so on, which is not this function's job.
    """
    table: dict[int, str | None] = dict(_VS_DELETE)
    ranges = ((0xF900, 0xFAFF), (0x2F800, 0x2FA1F), (0x2F00, 0x2FDF), (0x2E80, 0x2EFF))
    for lo, hi in ranges:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            folded = unicodedata.normalize("NFKC", ch)
            if folded != ch and len(folded) == 1 and _is_cjk_ideograph(folded):
                table[cp] = ITAIJI_TABLE.get(folded, folded)
    for variant, rep in ITAIJI_TABLE.items():
        table[ord(variant)] = rep
    return table


_KANJI_MAP: Final = _build_kanji_map()


def fold_kanji(s: str) -> str:
    """Fold kanji spelling variation away for search.

    Strips variation selectors, maps compatibility ideographs and radicals to
    unified ideographs, then applies :data:`ITAIJI_TABLE`.  Everything else
    (kana, Latin, PUA 外字, unknown ideographs) passes through unchanged.
    Idempotent.
    """
    return s.translate(_KANJI_MAP)


# ---------------------------------------------------------------------------
# Width folding
# ---------------------------------------------------------------------------

_COMBINING_VOICED: Final = "\u3099"
_COMBINING_SEMI: Final = "\u309a"
# Spacing (゛゜) and half-width (ﾞﾟ) sound marks behave like the combining ones
# when typed after a kana.
_VOICE_MARKS: Final[Mapping[str, str]] = {
    "\u3099": _COMBINING_VOICED,
    "\u309b": _COMBINING_VOICED,
    "\uff9e": _COMBINING_VOICED,
    "\u309a": _COMBINING_SEMI,
    "\u309c": _COMBINING_SEMI,
    "\uff9f": _COMBINING_SEMI,
}


def _build_width_map() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in range(0xFF01, 0xFF5F):  # full-width ASCII ！..～
        table[cp] = chr(cp - 0xFEE0)
    table[0x3000] = " "
    for cp in range(0xFF61, 0xFFA0):  # half-width CJK punctuation and katakana
        table[cp] = unicodedata.normalize("NFKC", chr(cp))
    # Sound marks are composed separately (see _compose_voice_marks).
    del table[0xFF9E], table[0xFF9F]
    return table


_WIDTH_MAP: Final = _build_width_map()


def _build_compositions() -> dict[tuple[str, str], str]:
    """(kana, combining mark) -> precomposed kana, derived from Unicode NFC."""
    out: dict[tuple[str, str], str] = {}
    for cp in (*range(0x3041, 0x30A0), *range(0x30A0, 0x3100)):
        base = chr(cp)
        for mark in (_COMBINING_VOICED, _COMBINING_SEMI):
            composed = unicodedata.normalize("NFC", base + mark)
            if len(composed) == 1:
                out[(base, mark)] = composed
    return out


_COMPOSE: Final = _build_compositions()
_VOICED: Final[Mapping[str, str]] = {
    base: c for (base, mark), c in _COMPOSE.items() if mark == _COMBINING_VOICED
}
_UNVOICED: Final[Mapping[str, str]] = {c: base for (base, _m), c in _COMPOSE.items()}


def _compose_voice_marks(s: str, *, drop_orphans: bool) -> str:
    """Attach ゛/゜ (any of the three encodings) to the preceding kana.

    A mark that cannot compose (after a space, after ア ...) is dropped when
    *drop_orphans* is set, otherwise normalised to the combining form.
    """
    out: list[str] = []
    for ch in s:
        mark = _VOICE_MARKS.get(ch)
        if mark is None:
            out.append(ch)
            continue
        composed = _COMPOSE.get((out[-1], mark)) if out else None
        if composed is not None:
            out[-1] = composed
        elif not drop_orphans:
            out.append(mark)
    return "".join(out)


def fold_width(s: str) -> str:
    """Full-width ASCII to ASCII, U+3000 to space, half-width katakana to full.

    Half-width sound marks are composed with the preceding kana
    (ﾔﾏﾀﾞ -> ヤマダ); the spacing marks ゛゜ are composed the same way.
    """
    if not s.isascii():
        s = _compose_voice_marks(s.translate(_WIDTH_MAP), drop_orphans=False)
    return s


# ---------------------------------------------------------------------------
# Kana folding
# ---------------------------------------------------------------------------

# Long-vowel marks and the dashes people type instead of them, plus word
# separators in katakana foreign names (ジョン・スミス).  A reading heard aloud
# carries none of these reliably, so the key drops them.
_KANA_DROP: Final = frozenset(
    "ー-‐‑‒–—―−・=゠"  # ー, ASCII/Unicode dashes, middle dot, double hyphens
)
_SMALL_TO_LARGE: Final[Mapping[str, str]] = dict(
    zip(
        "ァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ",
        "アイウエオツヤユヨワカケクシストヌハヒフヘホムラリルレロ",
        strict=True,
    )
)
# Sounds that the modern ear (and IME) does not distinguish.
_SOUND_FOLD: Final[Mapping[str, str]] = {
    "ヂ": "ジ",
    "ヅ": "ズ",
    "ヲ": "オ",
    "ヰ": "イ",
    "ヱ": "エ",
    "ヷ": "バ",
    "ヸ": "ビ",
    "ヹ": "ベ",
    "ヺ": "ボ",
    "ヴ": "ブ",
    **_SMALL_TO_LARGE,
}
# ヴ + small vowel is one mora; fold it before small kana become large.
_VU_RE: Final = re.compile("ヴ([ァィゥェォャュョ])")
_VU_FOLD: Final[Mapping[str, str]] = {
    "ァ": "バ",
    "ィ": "ビ",
    "ゥ": "ブ",
    "ェ": "ベ",
    "ォ": "ボ",
    "ャ": "ビャ",
    "ュ": "ビュ",
    "ョ": "ビョ",
}
_DIGRAPHS: Final[Mapping[str, str]] = {"ゟ": "ヨリ", "ヿ": "コト"}
_ITERATION: Final = frozenset("ヽヾ")


def _hira_to_kata(s: str) -> str:
    # U+3041-3096 (ぁ..ゖ) and U+309D-309E (ゝゞ) sit exactly 0x60 below katakana.
    return "".join(
        chr(ord(ch) + 0x60) if ("\u3041" <= ch <= "\u3096" or ch in "ゝゞ") else ch for ch in s
    )


def _expand_iteration_marks(s: str) -> str:
    """いすゞ -> イスズ: ヽ repeats the previous kana, ヾ repeats it voiced."""
    out: list[str] = []
    for ch in s:
        if ch not in _ITERATION:
            out.append(ch)
            continue
        if not out:
            continue
        prev = _UNVOICED.get(out[-1], out[-1])
        out.append(_VOICED.get(prev, prev) if ch == "ヾ" else prev)
    return "".join(out)


def fold_kana(s: str) -> str:
    """Compact katakana key for a reading.

    Variation selectors stripped, full-width ASCII -> ASCII, half-width
    katakana -> full width (with sound marks composed), hiragana -> katakana,
    iteration marks expanded, ヴ-row -> バ-row, small kana -> large,
    ヂヅヲヰヱ -> ジズオイエ; long-vowel marks, dashes, middle dots and all
    whitespace removed.  Non-kana characters (kanji, Latin) pass through.
    Idempotent.
    """
    s = strip_variation_selectors(s).translate(_WIDTH_MAP)
    s = "".join(ch for ch in s if ch not in _KANA_DROP and not ch.isspace())
    s = _compose_voice_marks(s, drop_orphans=True)
    s = _hira_to_kata(s)
    s = "".join(_DIGRAPHS.get(ch, ch) for ch in s)
    s = _expand_iteration_marks(s)
    s = _VU_RE.sub(lambda m: _VU_FOLD[m.group(1)], s)
    return "".join(_SOUND_FOLD.get(ch, ch) for ch in s)


def _is_kana_char(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3041 <= cp <= 0x309F  # hiragana incl. sound and iteration marks
        or 0x30A0 <= cp <= 0x30FF  # katakana incl. ー and ・
        or 0x31F0 <= cp <= 0x31FF  # katakana phonetic extensions (ㇰ..ㇿ)
        or 0xFF65 <= cp <= 0xFF9F  # half-width katakana, ｰ, ﾞﾟ
        or ch in "－‐–-"  # dashes typed as long-vowel marks
    )


def is_kana(s: str) -> bool:
    """True if *s*, ignoring whitespace, is non-empty and all kana.

    Kana here means hiragana, katakana (full or half width), the long-vowel
    mark and the dashes typed in its place.  The search UI uses this to decide
    whether a query is a reading (search :func:`kana_key`) or a written name.
    """
    chars = [ch for ch in s if not ch.isspace()]
    return bool(chars) and all(_is_kana_char(ch) for ch in chars)


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------

_KE_FOLD: Final = str.maketrans({"ヶ": "ケ", "ヵ": "ケ", "个": "ケ"})
_NO_CHARS: Final = frozenset("ノの之")


def _is_kanji_like(ch: str) -> bool:
    return _is_cjk_ideograph(ch) or ch == "々"


def _fold_no_between_kanji(s: str) -> str:
    """一ノ瀬 / 一之瀬 / 一の瀬 -> 一ノ瀬 (only when flanked by kanji).

    Surnames and place names write the connecting "no" three ways.  Limiting
    the fold to kanji-kanji context keeps kana words intact.  Neighbours are
    judged on the input, which keeps the fold idempotent.
    """
    if not any(ch in _NO_CHARS for ch in s):
        return s
    out = list(s)
    for i in range(1, len(s) - 1):
        if s[i] in _NO_CHARS and _is_kanji_like(s[i - 1]) and _is_kanji_like(s[i + 1]):
            out[i] = "ノ"
    return "".join(out)


def _remove_whitespace(s: str) -> str:
    return "".join(s.split())


def _upper_ascii(s: str) -> str:
    return "".join(ch.upper() if ch.isascii() else ch for ch in s)


def name_key(s: str) -> str:
    """Search key for a written name (kanji, kana or romaji).

    fold_kanji, then all whitespace removed, widths folded, ASCII upper-cased
    (foreign residents are registered in capitals), ヶ/ヵ -> ケ and the
    connecting ノ/の/之 between kanji unified.  Kana are *not* folded between
    hiragana and katakana: a name written in hiragana is a different written
    name; readings go through :func:`kana_key`.
    """
    # ヶ is folded before fold_width so that a sound mark after it composes on
    # the first pass (ケ゛ -> ゲ), keeping the key idempotent.
    s = _remove_whitespace(fold_kanji(s)).translate(_KE_FOLD)
    return _fold_no_between_kanji(_upper_ascii(fold_width(s)))


def kana_key(s: str) -> str:
    """Search key for a reading (フリガナ); same as :func:`fold_kana`."""
    return fold_kana(s)


_DASHES: Final = str.maketrans(dict.fromkeys("‐‑‒–—―−", "-"))
_KANJI_DIGITS: Final[Mapping[str, int]] = {
    "〇": 0,
    "零": 0,
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_KANJI_UNITS: Final[Mapping[str, int]] = {"十": 10, "百": 100, "千": 1000}
_SEPARATORS: Final = "丁目|番地|番|号"
_KANJI_NUM_BEFORE_SEP_RE: Final = re.compile(f"([〇零一二三四五六七八九十百千]+)(?={_SEPARATORS})")
_SEP_AFTER_DIGIT_RE: Final = re.compile(f"(?<=[0-9])(?:{_SEPARATORS})")
_NO_BETWEEN_NUMBERS_RE: Final = re.compile("(?<=[0-9-])[のノ之](?=[0-9])")
_LONG_MARK_AFTER_DIGIT_RE: Final = re.compile("(?<=[0-9])ー")
_DASH_RUN_RE: Final = re.compile("-+")
_LOOSE_DASH_RE: Final = re.compile("(?<![0-9])-|-(?![0-9])")


def _kanji_number(text: str) -> int:
    """二十三 -> 23, 百五 -> 105, 一二三 -> 123 (positional), 十 -> 10."""
    if all(ch in _KANJI_DIGITS for ch in text):
        return int("".join(str(_KANJI_DIGITS[ch]) for ch in text))
    total = 0
    digit: int | None = None
    for ch in text:
        if ch in _KANJI_UNITS:
            total += (1 if digit is None else digit) * _KANJI_UNITS[ch]
            digit = None
        else:
            digit = _KANJI_DIGITS[ch] if digit is None else digit * 10 + _KANJI_DIGITS[ch]
    return total + (digit or 0)


def address_key(s: str) -> str:
    """Search key for an address, designed for substring ("contains") search.

    - kanji folded (:func:`fold_kanji`), whitespace removed, widths folded
      (full-width digits and letters to ASCII), ASCII upper-cased,
      ヶ/ヵ -> ケ;
    - 大字 and 小字 dropped (registers include them, people never say them);
      a bare 字 is kept because it is part of place names such as 十字;
    - kanji numerals right before 丁目/番地/番/号 become digits (三丁目 -> 3);
    - 丁目/番地/番/号 after a digit, の between numbers, any dash, and ー after a
      digit become "-"; runs collapse, and a "-" survives only between two
      digits (so a trailing 番地 or 号 vanishes).

    So ``大字亀塚１２３番地４`` -> ``亀塚123-4`` == ``address_key("亀塚123-4")``,
    and ``本町三丁目5番2号`` -> ``本町3-5-2``.
    """
    s = _remove_whitespace(fold_kanji(s)).translate(_KE_FOLD)
    s = _upper_ascii(fold_width(s)).translate(_DASHES)
    # Removing a piece can bring a new pattern together ("1-番2": the loose
    # dash goes, then 番 follows a digit), so iterate to a fixed point.  Every
    # step strictly shrinks the text or replaces a kanji by digits/dashes, so
    # this terminates, normally after one or two rounds.
    while True:
        previous = s
        s = s.replace("大字", "").replace("小字", "")
        s = _KANJI_NUM_BEFORE_SEP_RE.sub(lambda m: str(_kanji_number(m.group(1))), s)
        s = _SEP_AFTER_DIGIT_RE.sub("-", s)
        s = _LONG_MARK_AFTER_DIGIT_RE.sub("-", s)
        s = _NO_BETWEEN_NUMBERS_RE.sub("-", s)
        s = _DASH_RUN_RE.sub("-", s)
        s = _LOOSE_DASH_RE.sub("", s)
        if s == previous:
            return s
