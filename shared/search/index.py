"""`SearchIndex`: one town's in-memory SQLite index, and the `Hit`s it returns."""

from __future__ import annotations

import enum
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.model import Household, Resident
from shared.search import plan, rows
from shared.search.query import SearchError, parse_query
from shared.search.rows import (
    ADDRESS,
    DROP,
    FTS_TABLE,
    INDEXES,
    TABLES,
    Keyer,
    KeyRow,
    ResidentRow,
    fts_rowid,
    in_fts,
    key_values,
    order_of,
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


def _load(db: sqlite3.Connection, residents: list[ResidentRow], keys: list[list[KeyRow]]) -> None:
    """Replace every table with these residents (and keys[n] for residents[n]), spaced
    afresh over the rid sections; indexes are made after the rows are in. (Measured:
    keys go in fastest as they come, FTS rows fastest in rowid order.)"""
    rids = spaced_rids(residents)
    _script(db, DROP + ";" + TABLES)
    db.executemany(
        "INSERT INTO residents VALUES (?,?,?,?,?,?,?)",
        sorted((rid, *row) for rid, row in zip(rids, residents, strict=True)),
    )
    rows = [key_values(rid, k) for rid, ks in zip(rids, keys, strict=True) for k in ks]
    db.executemany("INSERT INTO keys VALUES (?,?,?,?,?)", rows)
    fts: dict[str, list[tuple[int, str]]] = {kind: [] for kind in FTS_TABLE}
    for kind, key, whole, rid, field in rows:
        if in_fts(key, whole):
            fts[kind].append((fts_rowid(rid, field), key))
    for kind, table in FTS_TABLE.items():
        db.executemany(f"INSERT INTO {table}(rowid, key) VALUES (?, ?)", sorted(fts[kind]))
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
        residents: list[ResidentRow] = []
        keys: list[list[KeyRow]] = []
        addresses: dict[str, list[KeyRow]] = {}
        seen: set[str] = set()
        for resident, household in items:
            self._check(resident, household)
            if resident.id in seen:
                raise SearchError(f"resident {resident.id} appears twice")
            seen.add(resident.id)
            if household.id not in addresses:
                addresses[household.id] = self._keyer.address_rows(household)
            residents.append(self._keyer.resident_row(resident))
            keys.append([*self._keyer.name_rows(resident), *addresses[household.id]])
        with self._lock, self._transaction() as db:
            _load(db, residents, keys)

    def upsert(self, resident: Resident, household: Household) -> None:
        """Add or replace one resident; a changed household address is applied to every
        member of the household."""
        self._check(resident, household)
        row = self._keyer.resident_row(resident)
        address = self._keyer.address_rows(household)
        keys = [*self._keyer.name_rows(resident), *address]
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

    def _check(self, resident: Resident, household: Household) -> None:
        if resident.town_code != self.town_code or household.town_code != self.town_code:
            raise SearchError(
                f"resident {resident.id} / household {household.id}: not of town {self.town_code}"
            )
        if resident.household_id != household.id:
            raise SearchError(f"resident {resident.id} is not in household {household.id}")

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
