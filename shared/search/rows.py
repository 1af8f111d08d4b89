"""The index's schema, and the rows a resident turns into (layout: see `shared.search`)."""

from __future__ import annotations

import functools
from typing import Any

from shared.model import Household, Resident
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


def spaced_rids(rows: list[ResidentRow]) -> list[int]:
    """Fresh rids for `rows` (in any order), spread evenly over their section."""
    rids = [0] * len(rows)
    for removed in (0, 1):
        members = sorted(
            (n for n, row in enumerate(rows) if row[2] == removed), key=lambda n: order_of(rows[n])
        )
        step = SECTION // (len(members) + 1)
        if step < 1:
            raise SearchError(f"{len(members)} residents do not fit the rid space")
        for place, n in enumerate(members, start=1):
            rids[n] = removed * SECTION + place * step
    return rids


def fts_rowid(rid: int, field: int) -> int:
    return rid * FTS_SLOTS + field


def in_fts(key: str, whole: int) -> bool:
    """Only whole values go to FTS: a word's substrings are substrings of its whole."""
    return bool(whole) and len(key) >= TRIGRAM


def _reading(value: str) -> str:
    """A フリガナ not yet certified may be exported as ****; it then carries no reading."""
    return value.replace("*", "").replace("＊", "")


class Keyer:
    """Turns records into rows. Surnames, given names and districts repeat across a town,
    so the (pure) key functions are memoised: that halves the time of a build."""

    def __init__(self) -> None:
        size = _CACHE_SIZE
        self._fold = {
            KANA: functools.lru_cache(maxsize=size)(kana_key),
            NAME: functools.lru_cache(maxsize=size)(name_key),
            ADDRESS: functools.lru_cache(maxsize=size)(address_key),
        }

    def _keys(self, field: int, kind: str, value: str) -> list[KeyRow]:
        fold = self._fold[kind]
        whole = fold(value)
        if not whole:
            return []
        rows = [(field, kind, whole, 1)]
        words = value.split()
        if len(words) > 1:
            parts = {fold(word) for word in words} - {whole, ""}
            rows += [(field, kind, part, 0) for part in sorted(parts)]
        return rows

    def name_rows(self, resident: Resident) -> list[KeyRow]:
        """Name and reading keys: each whole value, and each word of it (surname, given
        name) on its own. Never the 個人番号."""
        sources = [
            (F_NAME, NAME, resident.name),
            (F_KANA, KANA, _reading(resident.kana)),
            (F_FORMER, NAME, resident.former_surname),
            (F_FORMER_KANA, KANA, resident.former_surname_kana),
        ]
        if resident.foreign is not None:
            sources += [
                (F_ALIAS, NAME, resident.foreign.alias),
                (F_ALIAS_KANA, KANA, resident.foreign.alias_kana),
            ]
        return [row for field, kind, value in sources for row in self._keys(field, kind, value)]

    def address_rows(self, household: Household) -> list[KeyRow]:
        """The whole address (大字 + 番地) and, as its 'word', the 大字 alone."""
        fold = self._fold[ADDRESS]
        whole = fold(household.district + household.address)
        district = fold(household.district)
        rows = [(F_ADDRESS, ADDRESS, whole, 1)] if whole else []
        if district and district != whole:
            rows.append((F_ADDRESS, ADDRESS, district, 0))
        return rows

    def resident_row(self, resident: Resident) -> ResidentRow:
        return (
            resident.id,
            resident.household_id,
            int(resident.is_removed),
            self._fold[KANA](_reading(resident.kana)) or NO_READING,
            resident.birth_date.isoformat(),
            resident.juminhyo_code,
        )


def key_values(rid: int, row: KeyRow) -> tuple[Any, ...]:
    """A `keys` row in column order (kind, key, whole, rid, field)."""
    field, kind, key, whole = row
    return kind, key, whole, rid, field
