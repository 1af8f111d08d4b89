"""Japanese era (和暦) dates: formatting for certificates, parsing clerk input.

Why this module exists
----------------------
Certificates issued by a town hall print dates in the era calendar
(``令和2年4月1日``, with ``元年`` for the first year), while clerks type dates
in whatever form is fastest: ``R2.4.1``, ``s45/3/2``, full-width
``Ｒ２．４．１`` from an IME left in 全角 mode, or a Western ``20200401``.
Foreign residents' dates are printed in the Western calendar (西暦).

Era boundaries are where mistakes hide: 昭和64年 lasted only seven days
(1989-01-01..01-07) and 平成 began on 1989-01-08, so ``平成元年1月7日`` and
``昭和64年1月8日`` do not exist.  :func:`parse_date` rejects such input with a
Japanese message the clerk can act on instead of silently shifting the date.

Calendar notes
--------------
- 明治 starts here on 1868-10-23 (明治改元, 慶応4年9月8日).  Much software uses
  1868-01-25 because the change was made retroactive to the first day of
  慶応4年; we use the proclamation day, as the spec for this appliance asks.
  Dates before it cannot be expressed in 和暦 by this module.
- Japan used the lunisolar calendar until 明治5年12月2日; month/day values are
  always Gregorian here, which differs from historical documents dated before
  1873-01-01.  No living resident is affected.
- Era start days (first day of the new era): 大正 1912-07-30, 昭和 1926-12-25,
  平成 1989-01-08, 令和 2019-05-01.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "ERAS",
    "Era",
    "WarekiError",
    "WarekiParts",
    "era_for",
    "parse_date",
    "parse_partial",
    "to_seireki",
    "to_wareki",
    "to_wareki_parts",
    "to_wareki_short",
]


class WarekiError(ValueError):
    """Invalid or out-of-era date; ``str(err)`` is a Japanese message for clerks."""


@dataclass(frozen=True, slots=True)
class Era:
    """One Japanese era: kanji name, one-letter abbreviation and inclusive span."""

    name: str
    letter: str
    start: dt.date
    end: dt.date | None  # last day, inclusive; None for the current era

    def contains(self, d: dt.date) -> bool:
        return self.start <= d and (self.end is None or d <= self.end)

    def gregorian_year(self, era_year: int) -> int:
        return self.start.year + era_year - 1


def _build_eras() -> tuple[Era, ...]:
    starts = (
        ("明治", "M", dt.date(1868, 10, 23)),
        ("大正", "T", dt.date(1912, 7, 30)),
        ("昭和", "S", dt.date(1926, 12, 25)),
        ("平成", "H", dt.date(1989, 1, 8)),
        ("令和", "R", dt.date(2019, 5, 1)),
    )
    eras = []
    for i, (name, letter, start) in enumerate(starts):
        end = starts[i + 1][2] - dt.timedelta(days=1) if i + 1 < len(starts) else None
        eras.append(Era(name, letter, start, end))
    return tuple(eras)


ERAS: Final[tuple[Era, ...]] = _build_eras()
"""All supported eras, oldest first."""

_ERA_BY_KEY: Final[dict[str, Era]] = {
    **{e.name: e for e in ERAS},
    **{e.letter: e for e in ERAS},
}


class WarekiParts(NamedTuple):
    era: Era
    year: int
    month: int
    day: int


def _year_label(era_year: int) -> str:
    return "元" if era_year == 1 else str(era_year)


def era_for(d: dt.date) -> Era:
    """The era containing *d*; raises :class:`WarekiError` before 明治."""
    for era in reversed(ERAS):
        if era.start <= d:
            return era
    first = ERAS[0].start
    raise WarekiError(f"{first.year}年{first.month}月{first.day}日より前の日付は和暦で表せません")


def to_wareki_parts(d: dt.date) -> WarekiParts:
    """``date(2020, 4, 1)`` -> ``WarekiParts(令和, 2, 4, 1)``."""
    era = era_for(d)
    return WarekiParts(era, d.year - era.start.year + 1, d.month, d.day)


def to_wareki(d: dt.date) -> str:
    """Formal certificate form: ``令和2年4月1日``, ``令和元年5月1日``."""
    p = to_wareki_parts(d)
    return f"{p.era.name}{_year_label(p.year)}年{p.month}月{p.day}日"


def to_wareki_short(d: dt.date) -> str:
    """Compact form as clerks type it: ``R2.4.1`` (year 1 is ``1``, not 元)."""
    p = to_wareki_parts(d)
    return f"{p.era.letter}{p.year}.{p.month}.{p.day}"


def to_seireki(d: dt.date) -> str:
    """Western-calendar certificate form: ``2020年4月1日``."""
    return f"{d.year}年{d.month}月{d.day}日"


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_ERA_ALT: Final = "|".join([*(e.name for e in ERAS), *(e.letter for e in ERAS)])
# Separated forms.  Year, then optionally month, then optionally day; each
# separator is the kanji unit or one of . / -.  "昭和45年", "S45.3", "R2/4/1".
_ERA_RE: Final = re.compile(
    rf"(?P<era>{_ERA_ALT})(?P<y>元|\d{{1,3}})"
    r"(?:(?:年|[./-])(?P<m>\d{1,2})(?:(?:月|[./-])(?P<d>\d{1,2})日?|月)?|年)?"
)
# Compact era form with a two-digit year: "S450302".
_ERA_COMPACT_RE: Final = re.compile(
    rf"(?P<era>{_ERA_ALT})(?P<y>\d{{2}})(?P<m>\d{{2}})(?P<d>\d{{2}})"
)
_ERA_ONLY_RE: Final = re.compile(rf"(?P<era>{_ERA_ALT})")
_WESTERN_RE: Final = re.compile(
    r"(?:西暦)?(?P<y>\d{4})"
    r"(?:(?:年|[./-])(?P<m>\d{1,2})(?:(?:月|[./-])(?P<d>\d{1,2})日?|月)?|年)?"
)
_WESTERN_COMPACT_RE: Final = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})?")

_DASHES: Final = str.maketrans(dict.fromkeys("‐‑‒–—―−ー・", "-"))
_SPACE_BETWEEN_DIGITS_RE: Final = re.compile(r"(?<=\d)\s+(?=\d)")


def _normalise(text: str) -> str:
    # NFKC: full-width digits/letters/punctuation to ASCII, and the era
    # ligatures ㍾㍽㍼㍻㋿ to 明治..令和.
    s = unicodedata.normalize("NFKC", text).strip().upper().translate(_DASHES)
    s = _SPACE_BETWEEN_DIGITS_RE.sub(".", s)
    return "".join(s.split())


class _Fields(NamedTuple):
    era: Era | None
    year: int
    month: int | None
    day: int | None


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def _match(text: str) -> _Fields | None:
    s = _normalise(text)
    for pattern in (_ERA_RE, _ERA_COMPACT_RE):
        m = pattern.fullmatch(s)
        if m:
            y = m["y"]
            return _Fields(
                _ERA_BY_KEY[m["era"]],
                1 if y == "元" else int(y),
                _int_or_none(m["m"]),
                _int_or_none(m["d"]),
            )
    for pattern in (_WESTERN_RE, _WESTERN_COMPACT_RE):
        m = pattern.fullmatch(s)
        if m:
            return _Fields(None, int(m["y"]), _int_or_none(m["m"]), _int_or_none(m["d"]))
    return None


def _unparseable(text: str) -> WarekiError:
    return WarekiError(
        f"日付として解釈できません:「{text.strip()}」（例: R2.4.1、令和2年4月1日、2020-04-01）"
    )


def _year_text(f: _Fields) -> str:
    return f"{f.era.name}{_year_label(f.year)}年" if f.era else f"{f.year}年"


def _label(f: _Fields) -> str:
    """Japanese rendering of what the clerk typed, for error messages."""
    month = f"{f.month}月" if f.month is not None else ""
    day = f"{f.day}日" if f.day is not None else ""
    return _year_text(f) + month + day


def _era_year_exists(era: Era, era_year: int) -> bool:
    gy = era.gregorian_year(era_year)
    return era_year >= 1 and (era.end is None or gy <= era.end.year)


def _era_span_hint(era: Era, era_year: int) -> str:
    """'昭和64年は1月7日まで' / '平成元年は1月8日から' for boundary years."""
    label = f"{era.name}{_year_label(era_year)}年"
    if era.gregorian_year(era_year) == era.start.year:
        return f"{label}は{era.start.month}月{era.start.day}日から"
    assert era.end is not None
    return f"{label}は{era.end.month}月{era.end.day}日まで"


def _resolve(f: _Fields) -> tuple[dt.date, dt.date]:
    """Inclusive Gregorian range for the fields, validated against the era."""
    era = f.era
    gy = era.gregorian_year(f.year) if era else f.year
    if f.year < 1 or not dt.MINYEAR <= gy <= dt.MAXYEAR:
        raise WarekiError(f"{_year_text(f)}は存在しません")
    if era is not None and not _era_year_exists(era, f.year):
        raise WarekiError(f"{_year_text(f)}は存在しません")
    if f.month is not None and not 1 <= f.month <= 12:
        raise WarekiError(f"{f.month}月は存在しません")

    if f.day is not None:
        assert f.month is not None
        last = calendar.monthrange(gy, f.month)[1]
        if not 1 <= f.day <= last:
            raise WarekiError(f"{_label(f)}は存在しません（{f.month}月は{last}日まで）")
        start = end = dt.date(gy, f.month, f.day)
    elif f.month is not None:
        start = dt.date(gy, f.month, 1)
        end = dt.date(gy, f.month, calendar.monthrange(gy, f.month)[1])
    else:
        start, end = dt.date(gy, 1, 1), dt.date(gy, 12, 31)

    if era is None:
        return start, end
    clipped = max(start, era.start), end if era.end is None else min(end, era.end)
    # A partial range may be clipped to the era; a full date must lie inside.
    if clipped[0] > clipped[1] or (f.day is not None and clipped != (start, end)):
        raise WarekiError(f"{_label(f)}は存在しません（{_era_span_hint(era, f.year)}）")
    return clipped


def parse_date(text: str) -> dt.date:
    """Parse a full date as a clerk types it.

    Accepts era forms (``R2.4.1``, ``r2/4/1``, ``Ｒ２．４．１``, ``令和2年4月1日``,
    ``令和元年5月1日``, ``S450302``, ``㍼45年3月2日``) and Western forms
    (``2020-04-01``, ``2020/4/1``, ``2020年4月1日``, ``20200401``), full- or
    half-width, with optional spaces.  Raises :class:`WarekiError` with a
    Japanese message for unparseable text, impossible dates (2月30日) and
    dates outside their era (昭和64年1月8日, 平成元年1月7日, 昭和65年).
    """
    f = _match(text)
    if f is None:
        raise _unparseable(text)
    if f.month is None or f.day is None:
        raise WarekiError(f"年月日まで入力してください:「{text.strip()}」")
    return _resolve(f)[0]


def parse_partial(text: str) -> tuple[dt.date, dt.date]:
    """Parse a possibly partial date for search; returns an inclusive range.

    ``S45`` / ``昭和45年`` / ``1970`` -> the year; ``S45.3`` / ``昭和45年3月`` /
    ``1970-03`` / ``197003`` -> the month; a full date -> that single day; an
    era name alone (``昭和``, ``S``) -> the whole era.  Ranges are clipped to
    the era, so ``平成元年`` is 1989-01-08..1989-12-31 and ``昭和64年`` is
    1989-01-01..1989-01-07.
    """
    f = _match(text)
    if f is None:
        m = _ERA_ONLY_RE.fullmatch(_normalise(text))
        if m is None:
            raise _unparseable(text)
        era = _ERA_BY_KEY[m["era"]]
        return era.start, era.end if era.end is not None else dt.date.max
    return _resolve(f)
