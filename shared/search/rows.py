"""The index's schema, and the rows a resident turns into (layout: see `shared.search`)."""

from __future__ import annotations

import functools
from datetime import date
from operator import itemgetter
from typing import Any

from shared.model import Household, Resident
from shared.records import Record
from shared.search.query import SearchError
from shared.textnorm import address_key, kana_key, name_key

# Key kinds: which fold made the key, and which query words look at it.
KANA, NAME, ADDRESS = "k", "n", "a"
FTS_TABLE = {KANA: "kana_fts", NAME: "name_fts", ADDRESS: "address_fts"}
TRIGRAM = 3  # FTS5 trigram needs three characters; shorter words match by prefix only

# keys.field: the Resident attribute a key came from (Hit.fields names), by number.
FIELDS = (
    "name",
    "kana",
    "alias",
    "alias_kana",
    "former_surname",
    "former_surname_kana",
    "address",
)
F_NAME, F_KANA, F_ALIAS, F_ALIAS_KANA, F_FORMER, F_FORMER_KANA, F_ADDRESS = range(len(FIELDS))
FTS_SLOTS = 8  # an FTS rowid is rid * FTS_SLOTS + field: unique, and sorted like rid

# A resident's rid is its place in result order (removed, reading, birth, id): living
# residents in (0, SECTION), 除票 in (SECTION, 2 * SECTION). A build spaces them evenly;
# an upsert takes the middle of the gap between its neighbours; a gap that runs out
# (some 40 inserts into one spot) makes the index renumber itself.
SECTION = 1 << 59  # FTS rowids must stay below 2**63

NO_READING = "\U0010ffff"  # kana_sort of a resident without a reading: after every kana

TABLES = f"""
CREATE TABLE residents (
    rid INTEGER PRIMARY KEY,
    resident_id TEXT NOT NULL,
    household_id TEXT NOT NULL,
    removed INTEGER NOT NULL,
    kana_sort TEXT NOT NULL,
    birth TEXT NOT NULL,
    code TEXT NOT NULL
);
CREATE TABLE keys (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    whole INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    field INTEGER NOT NULL,
    PRIMARY KEY (kind, key, whole, rid, field)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE {FTS_TABLE[KANA]} USING fts5(
    key, content='', columnsize=0, tokenize='trigram case_sensitive 1');
CREATE VIRTUAL TABLE {FTS_TABLE[NAME]} USING fts5(
    key, content='', columnsize=0, tokenize='trigram case_sensitive 1');
CREATE VIRTUAL TABLE {FTS_TABLE[ADDRESS]} USING fts5(
    key, content='', columnsize=0, tokenize='trigram case_sensitive 1');
"""

INDEXES = """
CREATE UNIQUE INDEX residents_id ON residents(resident_id);
CREATE INDEX residents_household ON residents(household_id);
CREATE INDEX residents_birth ON residents(birth);
CREATE INDEX residents_code ON residents(code);
CREATE INDEX residents_order ON residents(removed, kana_sort, birth, resident_id);
CREATE INDEX keys_resident ON keys(rid, kind, key, whole);
"""

DROP = ";".join(f"DROP TABLE IF EXISTS {t}" for t in ("residents", "keys", *FTS_TABLE.values()))

# (field, kind, key, whole): whole=1 for a whole value, 0 for one of its words
KeyRow = tuple[int, str, str, int]
# (resident_id, household_id, removed, kana_sort, birth, code)
ResidentRow = tuple[str, str, int, str, str, str]
_CACHE_SIZE = 1 << 16


def order_of(row: ResidentRow) -> tuple[int, str, str, str]:
    """Result order: living first, then by reading, birth date and id."""
    resident_id, _household, removed, kana_sort, birth, _code = row
    return removed, kana_sort, birth, resident_id


def spaced_rids(rows: list[ResidentRow]) -> list[tuple[int, int]]:
    """Fresh rids for `rows` (in any order), spread evenly over their section: (rid, n)
    for every rows[n], in rid order."""
    ranked = sorted((*order_of(row), n) for n, row in enumerate(rows))
    living = sum(1 for entry in ranked if not entry[0])
    out = []
    for removed, members in ((0, ranked[:living]), (1, ranked[living:])):
        step = SECTION // (len(members) + 1)
        if step < 1:
            raise SearchError(f"{len(members)} residents do not fit the rid space")
        base = removed * SECTION
        out += [(base + place * step, entry[4]) for place, entry in enumerate(members, start=1)]
    return out


def fts_rowid(rid: int, field: int) -> int:
    return rid * FTS_SLOTS + field


def in_fts(key: str, whole: int) -> bool:
    """Only whole values go to FTS: a word's substrings are substrings of its whole."""
    return bool(whole) and len(key) >= TRIGRAM


def _reading(value: str) -> str:
    """A フリガナ not yet certified may be exported as ****; it then carries no reading."""
    return value.replace("*", "").replace("＊", "")


# What the index reads of a resident and of a household, as plain values: a build from
# flat registry records (`person_of_record`) constructs no model objects.
# (id, town_code, household_id, name, kana, birth ISO date, 住民票コード, removed,
#  旧氏, 旧氏カナ, 通称, 通称カナ)
Person = tuple[str, str, str, str, str, str, str, bool, str, str, str, str]
# (id, town_code, district, address)
Home = tuple[str, str, str, str]

_REMOVAL_FIELDS = ("removal.reason", "removal.date", "removal.destination")
_FOREIGN_FIELDS = (
    "foreign.nationality",
    "foreign.status",
    "foreign.residence_status",
    "foreign.period_of_stay",
    "foreign.expiry",
    "foreign.alias",
    "foreign.alias_kana",
)


def person_of(resident: Resident) -> Person:
    foreign = resident.foreign
    return (
        resident.id,
        resident.town_code,
        resident.household_id,
        resident.name,
        resident.kana,
        resident.birth_date.isoformat(),
        resident.juminhyo_code,
        resident.removal is not None,
        resident.former_surname,
        resident.former_surname_kana,
        "" if foreign is None else foreign.alias,
        "" if foreign is None else foreign.alias_kana,
    )


def home_of(household: Household) -> Home:
    return household.id, household.town_code, household.district, household.address


# The fields of a flat resident record the index reads, fetched in one C call (a
# record written by `shared.records.to_record` holds every field, None included):
# 0-6 required text, 7-8 旧氏 (absent: ""), 9-15 the foreign-resident items (通称 first),
# 16-18 the removal.
_PERSON_FIELDS = (
    "id",
    "town_code",
    "household_id",
    "name",
    "kana",
    "birth_date",
    "juminhyo_code",
    "former_surname",
    "former_surname_kana",
    "foreign.alias",
    "foreign.alias_kana",
    *(f for f in _FOREIGN_FIELDS if f not in ("foreign.alias", "foreign.alias_kana")),
    *_REMOVAL_FIELDS,
)
# What a build from records reads (`SearchIndex.build_records`): a registry can fetch
# only these fields.
RESIDENT_FIELDS: tuple[str, ...] = _PERSON_FIELDS
_PERSON_DEFAULTS = tuple("" if f.startswith("former_") else None for f in _PERSON_FIELDS)
_PERSON_GET = itemgetter(*_PERSON_FIELDS)
_FOREIGN = slice(9, 9 + len(_FOREIGN_FIELDS))
_REMOVAL = slice(9 + len(_FOREIGN_FIELDS), None)
_NO_FOREIGN = (None,) * len(_FOREIGN_FIELDS)
_NO_REMOVAL = (None,) * len(_REMOVAL_FIELDS)
_HOME_FIELDS = ("id", "town_code", "district", "address")
_HOME_GET = itemgetter(*_HOME_FIELDS)
HOUSEHOLD_FIELDS: tuple[str, ...] = _HOME_FIELDS


def _missing(record: Record, fields: tuple[str, ...], values: tuple[object, ...]) -> SearchError:
    missing = ", ".join(f for f, v in zip(fields, values, strict=False) if v is None)
    return SearchError(f"record {record.get('id')!r}: no value for {missing}")


def person_of_record(record: Record) -> Person:
    """`person_of(from_record(Resident, record))` without building the Resident: the
    same values, read straight from the flat record (`shared.records` layout). A nested
    item (removal, foreign-resident items) exists when any of its fields is set; a text
    field the index reads may not be None."""
    try:
        got = _PERSON_GET(record)
    except KeyError:  # not every field stored: an absent one reads as its default
        got = tuple(map(record.get, _PERSON_FIELDS, _PERSON_DEFAULTS))
    foreign = got[_FOREIGN] != _NO_FOREIGN
    texts = got[:11] if foreign else got[:9]
    if None in texts:
        raise _missing(record, _PERSON_FIELDS, texts)
    ident, town, home, name, kana, birth, code, former, former_kana = map(str, texts[:9])
    alias, alias_kana = (str(texts[9]), str(texts[10])) if foreign else ("", "")
    birth = date.fromisoformat(birth).isoformat()
    removed = got[_REMOVAL] != _NO_REMOVAL
    return (
        ident, town, home, name, kana, birth, code, removed,
        former, former_kana, alias, alias_kana,
    )  # fmt: skip


def home_of_record(record: Record) -> Home:
    try:
        got = _HOME_GET(record)
    except KeyError:
        got = tuple(map(record.get, _HOME_FIELDS))
    if None in got:
        raise _missing(record, _HOME_FIELDS, got)
    ident, town, district, address = map(str, got)
    return ident, town, district, address


class Keyer:
    """Turns residents and households into rows. Surnames, given names and districts
    repeat across a town, so the (pure) key functions are memoised: that halves the
    time of a build."""

    def __init__(self) -> None:
        size = _CACHE_SIZE
        self._fold = {
            KANA: functools.lru_cache(maxsize=size)(kana_key),
            NAME: functools.lru_cache(maxsize=size)(name_key),
            ADDRESS: functools.lru_cache(maxsize=size)(address_key),
        }
        # Whole names and readings repeat too (family members share a surname, and a
        # town has many 佐藤 as well as many ヒロシ): the rows of a value are memoised.
        self._keys = functools.lru_cache(maxsize=size)(self._value_keys)

    def _value_keys(self, field: int, kind: str, value: str) -> tuple[KeyRow, ...]:
        fold = self._fold[kind]
        whole = fold(value)
        if not whole:
            return ()
        words = value.split()
        if len(words) < 2:
            return ((field, kind, whole, 1),)
        parts = {fold(word) for word in words} - {whole, ""}
        return ((field, kind, whole, 1), *((field, kind, part, 0) for part in sorted(parts)))

    def name_rows(self, person: Person) -> list[KeyRow]:
        """Name and reading keys: each whole value, and each word of it (surname, given
        name) on its own. Never the 個人番号."""
        keys = self._keys
        rows = [*keys(F_NAME, NAME, person[3]), *keys(F_KANA, KANA, _reading(person[4]))]
        former, former_kana, alias, alias_kana = person[8:12]
        if former or former_kana:  # most residents have neither 旧氏 nor 通称
            rows += [*keys(F_FORMER, NAME, former), *keys(F_FORMER_KANA, KANA, former_kana)]
        if alias or alias_kana:
            rows += [*keys(F_ALIAS, NAME, alias), *keys(F_ALIAS_KANA, KANA, alias_kana)]
        return rows

    def address_rows(self, home: Home) -> list[KeyRow]:
        """The whole address (大字 + 番地) and, as its 'word', the 大字 alone."""
        _id, _town, district_text, address = home
        fold = self._fold[ADDRESS]
        whole = fold(district_text + address)
        district = fold(district_text)
        rows = [(F_ADDRESS, ADDRESS, whole, 1)] if whole else []
        if district and district != whole:
            rows.append((F_ADDRESS, ADDRESS, district, 0))
        return rows

    def resident_row(self, person: Person) -> ResidentRow:
        return (
            person[0],
            person[2],
            int(person[7]),
            self._fold[KANA](_reading(person[4])) or NO_READING,
            person[5],
            person[6],
        )


def key_values(rid: int, row: KeyRow) -> tuple[Any, ...]:
    """A `keys` row in column order (kind, key, whole, rid, field)."""
    field, kind, key, whole = row
    return kind, key, whole, rid, field
