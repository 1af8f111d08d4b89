"""Parsing a clerk's search box into classified tokens (grammar: see `shared.search`).

Pure: no I/O and no index. Each whitespace-separated token becomes one `Token` whose
kind says which columns it is matched against and which key function folds it.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from shared.textnorm import address_key, is_kana, kana_key, name_key
from shared.wareki import WarekiError, parse_partial


class SearchError(Exception):
    """Base of the search package's errors."""


class QueryError(SearchError, ValueError):
    """A query the index refuses; `str(err)` is a Japanese message telling the clerk what
    to type instead (e.g. a 個人番号, or a date that does not exist)."""


class TokenKind(enum.Enum):
    DATE = "date"  # 生年月日 range
    CODE = "code"  # 住民票コード, exact
    KANA = "kana"  # a reading: フリガナ, 通称カナ, 旧氏カナ
    TEXT = "text"  # a written name (氏名, 通称, 旧氏) or an address


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # as typed (several words for a date typed with spaces)
    key: str = ""  # CODE: the code; KANA: kana_key; TEXT: name_key
    address: str = ""  # TEXT: address_key
    start: date | None = None  # DATE: inclusive range
    end: date | None = None


_FIRST_BIRTH_YEAR = 1868  # 明治; a smaller 4-digit number is a 番地, not a year
_MAX_DATE_WORDS = 3  # 「昭和45年 3月 2日」
_ERA_PREFIX = re.compile(r"(明治|大正|昭和|平成|令和|[MTSHR])(元|\d)")
_WESTERN_PREFIX = re.compile(r"\d{4}[./\-年]\d")
_ERA_NAME = re.compile(r"明治|大正|昭和|平成|令和|[MTSHR]")

_MY_NUMBER_REFUSED = (
    "個人番号（マイナンバー）では検索できません。"
    "住民票コード（11桁）、氏名、フリガナ、生年月日または住所で検索してください"
)


def _digits(word: str) -> str | None:
    """The ASCII digits of an all-digit word (full width allowed), else None."""
    folded = unicodedata.normalize("NFKC", word)
    return folded if folded.isascii() and folded.isdigit() else None


def _date_range(text: str) -> tuple[date, date] | None:
    try:
        start, end = parse_partial(text)
    except WarekiError:
        return None
    return (start, end) if end.year >= _FIRST_BIRTH_YEAR else None


def _looks_like_date(word: str) -> bool:
    folded = unicodedata.normalize("NFKC", word).upper()
    return bool(_ERA_PREFIX.match(folded) or _WESTERN_PREFIX.match(folded))


def _classify(word: str) -> Token | None:
    digits = _digits(word)
    if digits is not None and len(digits) == 11:
        return Token(TokenKind.CODE, word, key=digits)
    if digits is not None and len(digits) == 12:
        raise QueryError(_MY_NUMBER_REFUSED)
    span = _date_range(word)
    if span is not None:
        return Token(TokenKind.DATE, word, start=span[0], end=span[1])
    if _looks_like_date(word):
        try:
            parse_partial(word)
        except WarekiError as exc:
            raise QueryError(str(exc)) from exc
    if is_kana(word):
        key = kana_key(word)
        return Token(TokenKind.KANA, word, key=key) if key else None
    key, address = name_key(word), address_key(word)
    if not key and not address:
        return None
    return Token(TokenKind.TEXT, word, key=key, address=address)


def _continues_date(word: str) -> bool:
    """「3月」「2日」「3」: a word that can carry on a date (and no code or 個人番号)."""
    folded = unicodedata.normalize("NFKC", word)
    digits = _digits(word)
    return folded[:1].isdigit() and (digits is None or len(digits) <= 2)


def _starts_date(word: str) -> bool:
    folded = unicodedata.normalize("NFKC", word).upper()
    return bool(_ERA_NAME.fullmatch(folded) or _looks_like_date(folded) or folded.isdigit())


def _date_run(words: list[str], i: int) -> tuple[Token, int] | None:
    """A date typed over several words (「S45 3 2」, 「昭和45年 3月 2日」, 「平成 3年」),
    longest first. Only number words continue a date, so 「明 治」 stays a name."""
    if not _starts_date(words[i]):
        return None
    for j in range(min(len(words), i + _MAX_DATE_WORDS), i + 1, -1):
        run = words[i:j]
        if not all(_continues_date(w) for w in run[1:]):
            continue
        text = " ".join(run)
        span = _date_range(text)
        if span is not None:
            return Token(TokenKind.DATE, text, start=span[0], end=span[1]), j
    return None


def parse_query(query: str) -> list[Token]:
    """Split and classify; tokens whose key folds to nothing (a lone ー) are dropped.

    Raises `QueryError` for a 12-digit number (個人番号 is never searchable) and for a
    date that cannot exist (昭和64年1月8日), with the message for the clerk."""
    words = query.split()
    tokens: list[Token] = []
    i = 0
    while i < len(words):
        run = _date_run(words, i)
        if run is not None:
            tokens.append(run[0])
            i = run[1]
            continue
        token = _classify(words[i])
        if token is not None:
            tokens.append(token)
        i += 1
    return tokens
