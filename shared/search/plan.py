"""From tokens to a ranked page of resident rids (the algorithm: see `shared.search`).

A *matcher* is a kana or text token, a *filter* a date or code token. "Token t reaches
level T for resident r" — some key of r is at level T or better — is the one definition
of matching (`_reaches`); each test is an index probe on keys_resident (rid, kind, key).
A resident's level is the highest T that every matcher reaches (EXACT with filters only).
A rid is the resident's place in result order, so "sorted" means "by rid".

Plans, chosen per query by counts bounded so that they stay cheap:

- joined: a token or filter matches at most `SMALL` keys (or residents). Take its
  residents, compute each one's level, sort, cut. Most counter queries end here.
- tiered: every token is broad (a common surname, one kana). For each tier from EXACT
  down, produce that tier's residents in rid order and stop once the page is full.
  EXACT and PART come straight out of the keys primary key (kind, key, whole, rid), and
  SUBSTRING out of FTS5, which returns rowids (rid * 8 + field) in order; PREFIX (a key
  range) is sorted by SQLite with a growing LIMIT. A dense PREFIX or SUBSTRING tier is
  found sooner by walking the first `WINDOW` residents. Other tokens are checked per row.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

from shared.search import rows
from shared.search.query import Token, TokenKind
from shared.search.rows import ADDRESS, FIELDS, FTS_SLOTS, FTS_TABLE, KANA, NAME, TRIGRAM

SMALL = 1000  # keys (residents for a date): a token matching no more is joined whole
WINDOW = 2000  # residents walked in result order before a broad tier is sorted instead
EXACT, PART, PREFIX, SUBSTRING = 4, 3, 2, 1
F_BIRTH_DATE, F_CODE = "birth_date", "juminhyo_code"
_PREFIX_END = "\U0010ffff"  # above every character a key can hold
_FIRST_BATCH = 64

Page = list[tuple[int, int]]  # (rid, level), best first


class _Params:
    """Named SQL parameters, allocated as the SQL text is written."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return ":" + name


def _is_matcher(token: Token) -> bool:
    return token.kind in (TokenKind.KANA, TokenKind.TEXT)


def _targets(token: Token) -> list[tuple[str, str]]:
    """(key kind, folded query) pairs a matcher is compared with."""
    if token.kind is TokenKind.KANA:
        return [(KANA, token.key)]
    return [(kind, key) for kind, key in ((NAME, token.key), (ADDRESS, token.address)) if key]


# ---------------------------------------------------------------------------- matching


def _key_reaches(alias: str, key: str, tier: int, p: _Params) -> list[str]:
    """Conditions (any of) under which the keys row `alias` is at `tier` or better."""
    q = p(key)
    if tier == EXACT:
        return [f"{alias}.key = {q} AND {alias}.whole = 1"]
    if tier == PART:
        return [f"{alias}.key = {q}"]
    out = [f"{alias}.key >= {q} AND {alias}.key < {p(key + _PREFIX_END)}"]
    if tier == SUBSTRING and len(key) >= TRIGRAM:
        out.append(f"{alias}.whole = 1 AND instr({alias}.key, {q}) > 0")
    return out


def _reaches(token: Token, tier: int, rid: str, p: _Params) -> str:
    probes = [
        f"EXISTS (SELECT 1 FROM keys v WHERE v.rid = {rid} AND v.kind = '{kind}' AND {cond})"
        for kind, key in _targets(token)
        for cond in _key_reaches("v", key, tier, p)
    ]
    return "(" + " OR ".join(probes) + ")"


def _all_reach(tokens: list[Token], tier: int, rid: str, p: _Params) -> str:
    return " AND ".join(_reaches(t, tier, rid, p) for t in tokens) or "1"


def _tier_is(tokens: list[Token], tier: int, rid: str, p: _Params) -> str:
    """The tokens' worst level is exactly `tier`."""
    if tier == EXACT or not tokens:
        return _all_reach(tokens, tier, rid, p)
    return f"{_all_reach(tokens, tier, rid, p)} AND NOT ({_all_reach(tokens, tier + 1, rid, p)})"


def _level(tokens: list[Token], rid: str, p: _Params) -> str:
    if not tokens:
        return str(EXACT)
    arms = " ".join(
        f"WHEN {_all_reach(tokens, tier, rid, p)} THEN {tier}"
        for tier in (EXACT, PART, PREFIX, SUBSTRING)
    )
    return f"CASE {arms} ELSE 0 END"


def _filters(tokens: list[Token], rid: str, include_removed: bool, p: _Params) -> list[str]:
    """Date and code tokens as conditions on residents `r`; the 除票 rule on `rid`."""
    where = [] if include_removed else [f"{rid} < {rows.SECTION}"]
    for token in tokens:
        if token.kind is TokenKind.DATE:
            assert token.start is not None and token.end is not None
            start, end = p(token.start.isoformat()), p(token.end.isoformat())
            where.append(f"r.birth BETWEEN {start} AND {end}")
        elif token.kind is TokenKind.CODE:
            where.append(f"r.code = {p(token.key)}")
    return where


def _with_residents(source: str, rid: str, tokens: list[Token]) -> str:
    """Join residents `r` when a filter needs its columns."""
    if any(t.kind in (TokenKind.DATE, TokenKind.CODE) for t in tokens):
        return f"{source} JOIN residents r ON r.rid = {rid}"
    return source


# ---------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class _Source:
    """A driver's keys of one kind at exactly `level` (SUBSTRING: any FTS hit)."""

    kind: str
    key: str
    level: int

    @property
    def sorted(self) -> bool:
        """Rows come out in rid order without a sort (all but a key range)."""
        return self.level != PREFIX

    @property
    def rid(self) -> str:
        return f"(f.rowid / {FTS_SLOTS})" if self.level == SUBSTRING else "k.rid"

    def select(self, where: list[str], tokens: list[Token], p: _Params) -> str:
        """SELECT of the rid, with the source's own conditions and `where`."""
        rid = self.rid
        if self.level == SUBSTRING:
            table = FTS_TABLE[self.kind]
            match = p('"' + self.key.replace('"', '""') + '"')
            source = _with_residents(f"{table} f", rid, tokens)
            own = [f"{table} MATCH {match}"]
            order = "f.rowid"
        else:
            q = p(self.key)
            source = _with_residents("keys k", rid, tokens)
            if self.level == PREFIX:
                own = [f"k.kind = '{self.kind}'", f"k.key > {q}"]
                own.append(f"k.key < {p(self.key + _PREFIX_END)}")
            else:
                own = [f"k.kind = '{self.kind}'", f"k.key = {q}", f"k.whole = {self.level - PART}"]
            order = "k.rid"
        conditions = " AND ".join([*own, *where])
        return f"SELECT {rid} FROM {source} WHERE {conditions} ORDER BY {order}"


def _sources(token: Token) -> list[_Source]:
    out = []
    for kind, key in _targets(token):
        out += [_Source(kind, key, level) for level in (EXACT, PART, PREFIX)]
        if len(key) >= TRIGRAM:
            out.append(_Source(kind, key, SUBSTRING))
    return out


def _candidates(token: Token, p: _Params) -> list[str]:
    """SELECTs of `rid` over every key the token matches at any level."""
    out = []
    for kind, key in _targets(token):
        q, hi = p(key), p(key + _PREFIX_END)
        out.append(
            f"SELECT k.rid AS rid FROM keys k"
            f" WHERE k.kind = '{kind}' AND k.key >= {q} AND k.key < {hi}"
        )
        if len(key) >= TRIGRAM:
            table = FTS_TABLE[kind]
            match = p('"' + key.replace('"', '""') + '"')
            out.append(
                f"SELECT rowid / {FTS_SLOTS} AS rid FROM {table} WHERE {table} MATCH {match}"
            )
    return out


def _estimate(db: sqlite3.Connection, token: Token, bound: int) -> int:
    """Keys (residents, for a date) the token matches, counted up to `bound`."""
    p = _Params()
    if token.kind is TokenKind.CODE:
        return 0
    if token.kind is TokenKind.DATE:
        (where,) = _filters([token], "r.rid", include_removed=True, p=p)
        parts = [f"SELECT 1 FROM residents r WHERE {where}"]
    else:
        parts = _candidates(token, p)
    total = 0
    for part in parts:
        sql = f"SELECT count(*) FROM ({part} LIMIT {bound})"
        total += int(db.execute(sql, p.values).fetchone()[0])
    return min(total, bound)


# ---------------------------------------------------------------------------- plans


def _joined(
    db: sqlite3.Connection, driver: Token, tokens: list[Token], limit: int, include_removed: bool
) -> Page:
    """Every resident the driver matches, each one's level, sorted, cut. The FROM clause
    pins the driver as the outer loop: left to itself the planner may prefer a full scan
    that saves the sort."""
    p = _Params()
    level = _level([t for t in tokens if _is_matcher(t)], "r.rid", p)
    where = _filters(tokens, "r.rid", include_removed, p)
    if _is_matcher(driver):
        rids = " UNION ALL ".join(_candidates(driver, p))
        source = f"(SELECT DISTINCT rid FROM ({rids})) AS c CROSS JOIN residents r ON r.rid = c.rid"
    else:
        index = "residents_code" if driver.kind is TokenKind.CODE else "residents_birth"
        source = f"residents r INDEXED BY {index}"
    sql = (  # MATERIALIZED: else the level expression is inlined and run once per use
        f"WITH scored AS MATERIALIZED (SELECT r.rid, {level} AS level"
        f" FROM {source} WHERE {' AND '.join(where) or '1'})"
        f" SELECT rid, level FROM scored WHERE level > 0"
        f" ORDER BY level DESC, rid LIMIT {p(limit)}"
    )
    return [(int(rid), int(lv)) for rid, lv in db.execute(sql, p.values)]


def _window(
    db: sqlite3.Connection, tokens: list[Token], tier: int, include_removed: bool, need: int
) -> tuple[list[int], bool]:
    """Up to `need` tier members among the first WINDOW residents in rid order, and
    whether the window held every resident (then they are the whole tier)."""
    living = "" if include_removed else f"WHERE rid < {rows.SECTION}"
    boundary = db.execute(
        f"SELECT rid FROM residents {living} ORDER BY rid LIMIT 1 OFFSET {WINDOW}"
    ).fetchone()
    p = _Params()
    # one upper bound on the rowid: SQLite ranges over one and filters with the other
    where = _filters(tokens, "r.rid", include_removed or boundary is not None, p)
    if boundary is not None:
        where.append(f"r.rid < {int(boundary[0])}")
    where.append(_tier_is([t for t in tokens if _is_matcher(t)], tier, "r.rid", p))
    sql = f"SELECT r.rid FROM residents r WHERE {' AND '.join(where)} ORDER BY r.rid LIMIT {need}"
    return [int(rid) for (rid,) in db.execute(sql, p.values)], boundary is None


def _stream(
    db: sqlite3.Connection, sql: str, params: dict[str, Any], sorted_: bool
) -> Generator[int, None, None]:
    """Rids of `sql` in order, read lazily. An unsorted source is sorted by SQLite with a
    growing LIMIT (a top-N sort is far cheaper than sorting the whole range)."""
    if sorted_:
        cursor = db.execute(sql, params)
        try:
            for (rid,) in cursor:
                yield int(rid)
        finally:
            cursor.close()
        return
    done, batch = 0, _FIRST_BATCH
    while True:
        rows = db.execute(f"{sql} LIMIT {batch}", params).fetchall()
        for (rid,) in rows[done:]:
            yield int(rid)
        if len(rows) < batch:
            return
        done, batch = len(rows), batch * 8


def _driver_streams(
    db: sqlite3.Connection, driver: Token, tokens: list[Token], tier: int, include_removed: bool
) -> list[Generator[int, None, None]]:
    """The tier's residents via the driver's keys: a resident is in tier T through a
    driver key at level T whose other tokens all reach T, or through a better driver key
    whose other tokens' worst level is exactly T."""
    others = [t for t in tokens if _is_matcher(t) and t is not driver]
    streams = []
    for source in _sources(driver):
        if source.level < tier or (not others and source.level != tier):
            continue
        p = _Params()
        where = _filters(tokens, source.rid, include_removed, p)
        if others:
            check = _all_reach if source.level == tier else _tier_is
            where.append(check(others, tier, source.rid, p))
        sql = source.select(where, tokens, p)
        streams.append(_stream(db, sql, p.values, sorted_=source.sorted))
    return streams


def _tiered(
    db: sqlite3.Connection,
    driver: Token,
    tokens: list[Token],
    limit: int,
    include_removed: bool,
    dense: bool,
) -> Page:
    page: Page = []
    seen: set[int] = set()

    def take(rids: Iterable[int], tier: int) -> bool:
        """Add the residents not placed yet; True once the page is full."""
        for rid in rids:
            if rid not in seen:
                seen.add(rid)
                page.append((rid, tier))
                if len(page) >= limit:
                    return True
        return False

    for tier in (EXACT, PART, PREFIX, SUBSTRING):
        if dense and tier <= PREFIX:
            rids, complete = _window(db, tokens, tier, include_removed, limit - len(page))
            if take(rids, tier):
                return page
            if complete:
                continue
        streams = _driver_streams(db, driver, tokens, tier, include_removed)
        try:
            if take(heapq.merge(*streams), tier):
                return page
        finally:
            for stream in streams:
                stream.close()
    return page


def _filtered(
    db: sqlite3.Connection, driver: Token, tokens: list[Token], limit: int, removed: bool
) -> Page:
    """Broad filters only (a year, an era): walk the window, else join."""
    rids, complete = _window(db, tokens, EXACT, removed, limit)
    if len(rids) >= limit or complete:
        return [(rid, EXACT) for rid in rids]
    return _joined(db, driver, tokens, limit, removed)


def rank(db: sqlite3.Connection, tokens: list[Token], limit: int, include_removed: bool) -> Page:
    """The best `limit` residents matching every token, as (rid, level)."""
    population = int(db.execute("SELECT count(*) FROM residents").fetchone()[0])
    dense_at = population * limit // WINDOW + 1  # expected to fill the page in the window
    bound = max(SMALL, dense_at) + 1
    estimates = [(_estimate(db, t, bound), n) for n, t in enumerate(tokens)]
    size, n = min(estimates)
    if size <= SMALL:
        return _joined(db, tokens[n], tokens, limit, include_removed)
    if not any(_is_matcher(t) for t in tokens):
        return _filtered(db, tokens[n], tokens, limit, include_removed)
    density = 1.0
    for est, _n in estimates:
        density *= est / max(population, 1)
    _, n = min((est, n) for est, n in estimates if _is_matcher(tokens[n]))
    return _tiered(db, tokens[n], tokens, limit, include_removed, density * WINDOW >= limit)


def matched_fields(
    db: sqlite3.Connection, rids: list[int], tokens: list[Token]
) -> dict[int, set[str]]:
    """For each resident on the page, the fields any token matched."""
    labels = {TokenKind.DATE: F_BIRTH_DATE, TokenKind.CODE: F_CODE}
    filtered = {labels[t.kind] for t in tokens if t.kind in labels}
    fields: dict[int, set[str]] = {rid: set(filtered) for rid in rids}
    p = _Params()
    conds = [
        f"(k.kind = '{kind}' AND ({cond}))"
        for token in tokens
        if _is_matcher(token)
        for kind, key in _targets(token)
        for cond in _key_reaches("k", key, SUBSTRING, p)
    ]
    if conds and rids:
        marks = ", ".join(p(rid) for rid in rids)
        sql = f"SELECT rid, field FROM keys k WHERE k.rid IN ({marks}) AND ({' OR '.join(conds)})"
        for rid, field in db.execute(sql, p.values):
            fields[rid].add(FIELDS[field])
    return fields
