"""`SearchIndex`: one town's in-memory SQLite index, and the `Hit`s it returns."""

from __future__ import annotations

import enum
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

from shared.model import Household, Resident
from shared.records import Record
from shared.search import plan, rows
from shared.search.query import SearchError, parse_query
from shared.search.rows import (
    ADDRESS,
    DROP,
    FTS_SLOTS,
    FTS_TABLE,
    INDEXES,
    TABLES,
    TRIGRAM,
    Home,
    Keyer,
    KeyRow,
    Person,
    ResidentRow,
    fts_rowid,
    home_of,
    home_of_record,
    in_fts,
    key_values,
    order_of,
    person_of,
    person_of_record,
    spaced_rids,
)


class MatchLevel(enum.IntEnum):
    """How well a resident matched; with several words, the worst word's level."""

    SUBSTRING = plan.SUBSTRING  # a key contains the word (3 characters or more)
    PREFIX = plan.PREFIX  # a key, or a word of it (given name …), starts with it
    PART = plan.PART  # a word of a key equals it: the surname, the given name, the 大字
    EXACT = plan.EXACT  # a whole name, reading or address equals it; code; date only


@dataclass(frozen=True, slots=True)
class Hit:
    """One result. The index keeps keys only: the caller reads the record itself."""

    resident_id: str
    household_id: str
    level: MatchLevel
    fields: tuple[str, ...]  # matched fields as Resident attribute names, sorted
    removed: bool  # a 除票 (returned only with include_removed=True)


def _script(db: sqlite3.Connection, script: str) -> None:
    """Run DDL statement by statement (executescript would commit the transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


_BATCH = 200  # rows per INSERT statement in a bulk load (measured: ~30 % faster than 1)


def _insert(db: sqlite3.Connection, into: str, width: int, rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows, `_BATCH` to a statement: a statement per row costs more in the
    sqlite3 module's per-execution overhead than SQLite spends storing the row."""
    one = "(" + ",".join("?" * width) + ")"
    full = len(rows) - len(rows) % _BATCH
    if full:
        flat = list(chain.from_iterable(rows[:full]))
        step = width * _BATCH
        db.executemany(
            f"INSERT INTO {into} VALUES {','.join([one] * _BATCH)}",
            (flat[i : i + step] for i in range(0, len(flat), step)),
        )
    if rows[full:]:
        db.executemany(f"INSERT INTO {into} VALUES {one}", rows[full:])


def _load(db: sqlite3.Connection, residents: list[ResidentRow], keys: list[list[KeyRow]]) -> None:
    """Replace every table with these residents (and keys[n] for residents[n]), spaced
    afresh over the rid sections; indexes are made after the rows are in. (Measured:
    B-trees fill fastest in key order. Keys are listed in rid order and then sorted on
    the key text alone — stable, so rid order holds within a key — which costs a
    fraction of a full sort and leaves them almost in primary-key order; FTS rows go in
    in rowid order.)"""
    ranked = spaced_rids(residents)
    _script(db, DROP + ";" + TABLES)
    _insert(db, "residents", 7, [(rid, *residents[n]) for rid, n in ranked])
    rows = [
        (kind, key, whole, rid, field) for rid, n in ranked for field, kind, key, whole in keys[n]
    ]
    fts: dict[str, list[tuple[int, str]]] = {kind: [] for kind in FTS_TABLE}
    for kind, key, whole, rid, field in rows:
        if whole and len(key) >= TRIGRAM:  # in_fts, inlined: it runs for every key
            fts[kind].append((rid * FTS_SLOTS + field, key))
    rows.sort(key=itemgetter(1))
    _insert(db, "keys", 5, rows)
    for kind, table in FTS_TABLE.items():
        fts[kind].sort()
        _insert(db, f"{table}(rowid, key)", 2, fts[kind])
    _script(db, INDEXES)


class SearchIndex:
    """One town's search index. In memory only: plaintext never reaches the box's disk.

    Safe to share between threads: one lock, and every operation is short."""

    def __init__(self, town_code: str) -> None:
        if sqlite3.sqlite_version_info < (3, 34, 0):
            raise SearchError(f"SQLite {sqlite3.sqlite_version} lacks the FTS5 trigram tokenizer")
        self.town_code = town_code
        self._lock = threading.Lock()
        self._keyer = Keyer()
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        _script(self._db, TABLES + INDEXES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM residents").fetchone()[0])

    # ------------------------------------------------------------------ writing

    def build(self, items: Iterable[tuple[Resident, Household]]) -> None:
        """Replace the whole index. Every row is computed (and checked) before the
        database is touched, then loaded in one transaction."""
        self._build((person_of(r), home_of(h)) for r, h in items)

    def build_records(self, items: Iterable[tuple[Record, Record]]) -> None:
        """`build` from flat registry records (resident, household), as the CRDT
        documents hold them (`shared.records`): the same index, without building a
        Resident and a Household per row — what opening a town at login does."""
        self._build((person_of_record(r), home_of_record(h)) for r, h in items)

    def _build(self, items: Iterable[tuple[Person, Home]]) -> None:
        residents: list[ResidentRow] = []
        keys: list[list[KeyRow]] = []
        addresses: dict[str, list[KeyRow]] = {}
        seen: set[str] = set()
        keyer = self._keyer
        for person, home in items:
            self._check(person, home)
            if person[0] in seen:
                raise SearchError(f"resident {person[0]} appears twice")
            seen.add(person[0])
            address = addresses.get(home[0])
            if address is None:
                address = addresses[home[0]] = keyer.address_rows(home)
            residents.append(keyer.resident_row(person))
            keys.append([*keyer.name_rows(person), *address])
        with self._lock, self._transaction() as db:
            _load(db, residents, keys)

    def upsert(self, resident: Resident, household: Household) -> None:
        """Add or replace one resident; a changed household address is applied to every
        member of the household."""
        person, home = person_of(resident), home_of(household)
        self._check(person, home)
        row = self._keyer.resident_row(person)
        address = self._keyer.address_rows(home)
        keys = [*self._keyer.name_rows(person), *address]
        with self._lock, self._transaction() as db:
            found = db.execute(
                "SELECT rid FROM residents WHERE resident_id = ?", (resident.id,)
            ).fetchone()
            if found is not None:
                self._delete(db, int(found[0]))
            rid = self._place(db, row)
            if rid is None:  # the gap ran out: renumber everyone, then there is room
                self._respace(db)
                rid = self._place(db, row)
                if rid is None:
                    raise SearchError("no room left in the rid space")
            db.execute("INSERT INTO residents VALUES (?,?,?,?,?,?,?)", (rid, *row))
            self._insert_keys(db, rid, keys)
            self._refresh_household(db, household.id, rid, address)

    def remove(self, resident_id: str) -> None:
        """Drop a resident; removing an absent one does nothing. (A 除票 is not removed:
        upsert it with `removal` set and search leaves it out by default.)"""
        with self._lock, self._transaction() as db:
            found = db.execute(
                "SELECT rid FROM residents WHERE resident_id = ?", (resident_id,)
            ).fetchone()
            if found is not None:
                self._delete(db, int(found[0]))

    def _check(self, person: Person, home: Home) -> None:
        if person[1] != self.town_code or home[1] != self.town_code:
            raise SearchError(
                f"resident {person[0]} / household {home[0]}: not of town {self.town_code}"
            )
        if person[2] != home[0]:
            raise SearchError(f"resident {person[0]} is not in household {home[0]}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _place(db: sqlite3.Connection, row: ResidentRow) -> int | None:
        """A free rid between the neighbours of `row` in result order, or None."""
        order = order_of(row)
        columns = "(removed, kana_sort, birth, resident_id)"
        before = db.execute(
            f"SELECT rid FROM residents WHERE {columns} < (?,?,?,?)"
            " ORDER BY removed DESC, kana_sort DESC, birth DESC, resident_id DESC LIMIT 1",
            order,
        ).fetchone()
        after = db.execute(
            f"SELECT rid FROM residents WHERE {columns} > (?,?,?,?)"
            " ORDER BY removed, kana_sort, birth, resident_id LIMIT 1",
            order,
        ).fetchone()
        low, high = row[2] * rows.SECTION, (row[2] + 1) * rows.SECTION
        if before is not None:
            low = max(low, int(before[0]))
        if after is not None:
            high = min(high, int(after[0]))
        return (low + high) // 2 if high - low >= 2 else None

    @staticmethod
    def _respace(db: sqlite3.Connection) -> None:
        residents: list[ResidentRow] = []
        keys: dict[int, list[KeyRow]] = {}
        rids = []
        for rid, *row in db.execute("SELECT * FROM residents ORDER BY rid"):
            rids.append(rid)
            residents.append((row[0], row[1], row[2], row[3], row[4], row[5]))
        for kind, key, whole, rid, field in db.execute("SELECT * FROM keys"):
            keys.setdefault(rid, []).append((field, kind, key, whole))
        _load(db, residents, [keys.get(rid, []) for rid in rids])

    @staticmethod
    def _insert_keys(db: sqlite3.Connection, rid: int, keys: list[KeyRow]) -> None:
        db.executemany("INSERT INTO keys VALUES (?,?,?,?,?)", [key_values(rid, k) for k in keys])
        for field, kind, key, whole in keys:
            if in_fts(key, whole):
                db.execute(
                    f"INSERT INTO {FTS_TABLE[kind]}(rowid, key) VALUES (?, ?)",
                    (fts_rowid(rid, field), key),
                )

    @staticmethod
    def _delete_keys(db: sqlite3.Connection, rid: int, kind: str | None = None) -> None:
        """Delete a resident's keys; the FTS tables are contentless, so each entry is
        removed with its original text (FTS5's 'delete' command)."""
        only = "" if kind is None else f" AND kind = '{kind}'"
        rows = db.execute(
            f"SELECT kind, key, whole, field FROM keys WHERE rid = ?{only}", (rid,)
        ).fetchall()
        for key_kind, key, whole, field in rows:
            if in_fts(key, whole):
                table = FTS_TABLE[key_kind]
                db.execute(
                    f"INSERT INTO {table}({table}, rowid, key) VALUES ('delete', ?, ?)",
                    (fts_rowid(rid, field), key),
                )
        db.execute(f"DELETE FROM keys WHERE rid = ?{only}", (rid,))

    def _delete(self, db: sqlite3.Connection, rid: int) -> None:
        self._delete_keys(db, rid)
        db.execute("DELETE FROM residents WHERE rid = ?", (rid,))

    def _refresh_household(
        self, db: sqlite3.Connection, household_id: str, rid: int, address: list[KeyRow]
    ) -> None:
        """Give the other members the household's (possibly new) address keys."""
        wanted = sorted((key, whole) for _field, _kind, key, whole in address)
        members = db.execute(
            "SELECT rid FROM residents WHERE household_id = ? AND rid != ?", (household_id, rid)
        ).fetchall()
        for (member,) in members:
            current = db.execute(
                "SELECT key, whole FROM keys WHERE rid = ? AND kind = ? ORDER BY key, whole",
                (member, ADDRESS),
            ).fetchall()
            if [tuple(c) for c in current] != wanted:
                self._delete_keys(db, member, ADDRESS)
                self._insert_keys(db, member, address)

    # ------------------------------------------------------------------ reading

    def search(self, query: str, limit: int = 20, include_removed: bool = False) -> list[Hit]:
        """Residents matching every word of `query`, best first (grammar and ranking:
        see `shared.search`). Raises `QueryError` for a query the index refuses (a
        個人番号, a date that cannot exist), with a message for the clerk."""
        tokens = parse_query(query)
        if not tokens or limit <= 0:
            return []
        with self._lock:
            page = plan.rank(self._db, tokens, limit, include_removed)
            rids = [rid for rid, _level in page]
            fields = plan.matched_fields(self._db, rids, tokens)
            marks = ",".join("?" * len(rids))
            details = {
                rid: (resident_id, household_id, bool(removed))
                for rid, resident_id, household_id, removed in self._db.execute(
                    "SELECT rid, resident_id, household_id, removed FROM residents"
                    f" WHERE rid IN ({marks})",
                    rids,
                )
            }
        return [
            Hit(*details[rid][:2], MatchLevel(level), tuple(sorted(fields[rid])), details[rid][2])
            for rid, level in page
        ]
