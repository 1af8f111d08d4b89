"""Tests for shared.wareki: era formatting and clerk-input parsing."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.wareki import (
    ERAS,
    WarekiError,
    era_for,
    parse_date,
    parse_partial,
    to_seireki,
    to_wareki,
    to_wareki_parts,
    to_wareki_short,
)

D = dt.date
FIRST = D(1868, 10, 23)
_DATES = st.dates(min_value=FIRST, max_value=D(2100, 12, 31))

# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "formal", "short"),
    [
        (D(2020, 4, 1), "令和2年4月1日", "R2.4.1"),
        (D(2019, 5, 1), "令和元年5月1日", "R1.5.1"),
        (D(2019, 4, 30), "平成31年4月30日", "H31.4.30"),
        (D(1989, 1, 8), "平成元年1月8日", "H1.1.8"),
        (D(1989, 1, 7), "昭和64年1月7日", "S64.1.7"),
        (D(1970, 3, 2), "昭和45年3月2日", "S45.3.2"),
        (D(1926, 12, 25), "昭和元年12月25日", "S1.12.25"),
        (D(1926, 12, 24), "大正15年12月24日", "T15.12.24"),
        (D(1912, 7, 30), "大正元年7月30日", "T1.7.30"),
        (D(1912, 7, 29), "明治45年7月29日", "M45.7.29"),
        (D(1868, 10, 23), "明治元年10月23日", "M1.10.23"),
    ],
)
def test_to_wareki(d: dt.date, formal: str, short: str) -> None:
    assert to_wareki(d) == formal
    assert to_wareki_short(d) == short


def test_to_wareki_parts() -> None:
    parts = to_wareki_parts(D(2020, 4, 1))
    assert (parts.era.name, parts.era.letter, parts.year, parts.month, parts.day) == (
        "令和",
        "R",
        2,
        4,
        1,
    )
    era, year, month, day = to_wareki_parts(D(1989, 1, 7))
    assert (era.name, year, month, day) == ("昭和", 64, 1, 7)


def test_before_meiji_is_rejected() -> None:
    with pytest.raises(WarekiError):
        to_wareki(D(1868, 10, 22))
    with pytest.raises(WarekiError):
        era_for(D(1800, 1, 1))


def test_to_seireki() -> None:
    assert to_seireki(D(2020, 4, 1)) == "2020年4月1日"
    assert to_seireki(D(1985, 12, 31)) == "1985年12月31日"


def test_eras_are_contiguous() -> None:
    assert [e.letter for e in ERAS] == ["M", "T", "S", "H", "R"]
    assert ERAS[0].start == FIRST
    for older, newer in itertools.pairwise(ERAS):
        assert older.end is not None
        assert older.end + dt.timedelta(days=1) == newer.start
    assert ERAS[-1].end is None


# --------------------------------------------------------------------------
# parse_date
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("R2.4.1", D(2020, 4, 1)),
        ("r2/4/1", D(2020, 4, 1)),
        ("Ｒ２．４．１", D(2020, 4, 1)),
        ("ｒ２／４／１", D(2020, 4, 1)),
        ("R2-4-1", D(2020, 4, 1)),
        (" R2.4.1 ", D(2020, 4, 1)),
        ("令和2年4月1日", D(2020, 4, 1)),
        ("令和２年４月１日", D(2020, 4, 1)),
        ("令和 2年 4月 1日", D(2020, 4, 1)),
        ("令和元年5月1日", D(2019, 5, 1)),
        ("R元.5.1", D(2019, 5, 1)),
        ("昭和45年3月2日", D(1970, 3, 2)),
        ("S45.3.2", D(1970, 3, 2)),
        ("s45.03.02", D(1970, 3, 2)),
        ("S450302", D(1970, 3, 2)),
        ("H1.1.8", D(1989, 1, 8)),
        ("㍻元年1月8日", D(1989, 1, 8)),
        ("㋿2年4月1日", D(2020, 4, 1)),
        ("M45.7.29", D(1912, 7, 29)),
        ("T1.7.30", D(1912, 7, 30)),
        ("2020-04-01", D(2020, 4, 1)),
        ("2020/4/1", D(2020, 4, 1)),
        ("2020.4.1", D(2020, 4, 1)),
        ("20200401", D(2020, 4, 1)),
        ("２０２００４０１", D(2020, 4, 1)),
        ("２０２０年４月１日", D(2020, 4, 1)),
        ("西暦2020年4月1日", D(2020, 4, 1)),
        ("2020 4 1", D(2020, 4, 1)),
    ],
)
def test_parse_date_accepts(text: str, expected: dt.date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("昭和64年1月7日", D(1989, 1, 7)),
        ("平成元年1月8日", D(1989, 1, 8)),
        ("平成31年4月30日", D(2019, 4, 30)),
        ("令和元年5月1日", D(2019, 5, 1)),
        ("大正15年12月24日", D(1926, 12, 24)),
        ("昭和元年12月25日", D(1926, 12, 25)),
        ("明治元年10月23日", D(1868, 10, 23)),
    ],
)
def test_era_boundaries_valid(text: str, expected: dt.date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("昭和64年1月8日", "昭和64年1月8日は存在しません"),
        ("平成元年1月7日", "平成元年1月7日は存在しません"),
        ("H1.1.7", "平成元年1月7日は存在しません"),
        ("平成31年5月1日", "平成31年5月1日は存在しません"),
        ("令和元年4月30日", "令和元年4月30日は存在しません"),
        ("昭和65年1月1日", "昭和65年は存在しません"),
        ("S65.1.1", "昭和65年は存在しません"),
        ("大正16年1月1日", "大正16年は存在しません"),
        ("明治元年1月1日", "明治元年1月1日は存在しません"),
        ("R0.1.1", "令和0年は存在しません"),
        ("令和2年2月30日", "は存在しません"),
        ("令和3年2月29日", "は存在しません"),
        ("R2.13.1", "13月は存在しません"),
        ("R2.4.0", "は存在しません"),
        ("2021-02-29", "は存在しません"),
        ("0000-01-01", "0年は存在しません"),
        ("S45", "年月日まで"),
        ("2020-04", "年月日まで"),
        ("", "解釈できません"),
        ("明日", "解釈できません"),
        ("X2.4.1", "解釈できません"),
        ("20/4/1", "解釈できません"),
        ("2020401", "解釈できません"),
    ],
)
def test_parse_date_rejects(text: str, message_part: str) -> None:
    with pytest.raises(WarekiError, match=message_part):
        parse_date(text)


def test_wareki_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_date("平成元年1月7日")


def test_leap_day_in_era() -> None:
    assert parse_date("令和2年2月29日") == D(2020, 2, 29)
    assert parse_date("H12.2.29") == D(2000, 2, 29)


# --------------------------------------------------------------------------
# parse_partial
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("S45", D(1970, 1, 1), D(1970, 12, 31)),
        ("昭和45年", D(1970, 1, 1), D(1970, 12, 31)),
        ("1970", D(1970, 1, 1), D(1970, 12, 31)),
        ("1970年", D(1970, 1, 1), D(1970, 12, 31)),
        ("S45.3", D(1970, 3, 1), D(1970, 3, 31)),
        ("昭和45年3月", D(1970, 3, 1), D(1970, 3, 31)),
        ("1970-03", D(1970, 3, 1), D(1970, 3, 31)),
        ("197003", D(1970, 3, 1), D(1970, 3, 31)),
        ("R2.2", D(2020, 2, 1), D(2020, 2, 29)),
        ("昭和64年", D(1989, 1, 1), D(1989, 1, 7)),
        ("平成元年", D(1989, 1, 8), D(1989, 12, 31)),
        ("平成元年1月", D(1989, 1, 8), D(1989, 1, 31)),
        ("令和元年", D(2019, 5, 1), D(2019, 12, 31)),
        ("平成31年", D(2019, 1, 1), D(2019, 4, 30)),
        ("R2.4.1", D(2020, 4, 1), D(2020, 4, 1)),
        ("2020-04-01", D(2020, 4, 1), D(2020, 4, 1)),
        ("昭和", D(1926, 12, 25), D(1989, 1, 7)),
        ("Ｓ", D(1926, 12, 25), D(1989, 1, 7)),
    ],
)
def test_parse_partial(text: str, start: dt.date, end: dt.date) -> None:
    assert parse_partial(text) == (start, end)


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("昭和65年", "昭和65年は存在しません"),
        ("昭和64年2月", "昭和64年2月は存在しません"),
        ("平成元年1月7日", "は存在しません"),
        ("令和元年4月", "令和元年4月は存在しません"),
        ("R2.13", "13月は存在しません"),
        ("abc", "解釈できません"),
    ],
)
def test_parse_partial_rejects(text: str, message_part: str) -> None:
    with pytest.raises(WarekiError, match=message_part):
        parse_partial(text)


def test_parse_partial_current_era_is_open_ended() -> None:
    start, end = parse_partial("令和")
    assert start == D(2019, 5, 1)
    assert end >= D(2100, 12, 31)


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------


@given(_DATES)
def test_formal_round_trip(d: dt.date) -> None:
    assert parse_date(to_wareki(d)) == d


@given(_DATES)
def test_short_round_trip(d: dt.date) -> None:
    short = to_wareki_short(d)
    assert parse_date(short) == d
    assert parse_date(short.lower().replace(".", "/")) == d
    full_width = short.translate(
        {c: c + 0xFEE0 for c in range(0x21, 0x7F)}  # ASCII -> full-width forms
    )
    assert parse_date(full_width) == d


@given(_DATES)
def test_western_round_trip(d: dt.date) -> None:
    assert parse_date(d.isoformat()) == d
    assert parse_date(d.strftime("%Y%m%d")) == d
    assert parse_date(to_seireki(d)) == d


@given(_DATES)
def test_parts_consistent_with_era(d: dt.date) -> None:
    era, year, month, day = to_wareki_parts(d)
    assert era.contains(d)
    assert era.gregorian_year(year) == d.year
    assert (month, day) == (d.month, d.day)


@given(_DATES)
def test_partial_ranges_contain_the_date(d: dt.date) -> None:
    era, year, month, _day = to_wareki_parts(d)
    for text in (f"{era.letter}{year}", f"{era.letter}{year}.{month}", to_wareki(d)):
        start, end = parse_partial(text)
        assert start <= d <= end
        assert era.contains(start)
        assert era.contains(end)
    assert parse_partial(to_wareki(d)) == (d, d)


@given(st.text(max_size=20))
def test_parse_date_only_raises_wareki_error(text: str) -> None:
    with contextlib.suppress(WarekiError):
        parse_date(text)
