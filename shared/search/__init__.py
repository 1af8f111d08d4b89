"""Finding residents at the counter: a per-town, in-memory index of folded search keys.

A clerk types what they heard or what they can read off a damaged card; the index answers
with resident and household ids, best first, and the caller reads the records from the
registry. It holds only keys, never whole records, and never the 個人番号. It lives in an
in-memory SQLite database (`:memory:`): plaintext never reaches a box's disk. It is
rebuilt when a town opens and kept current with `upsert` / `remove`. A build takes model
objects (`build`) or the registry's flat records (`build_records`, what opening a town
uses: it reads only `RESIDENT_FIELDS` and `HOUSEHOLD_FIELDS` and builds no objects).

    index = SearchIndex("15307")
    index.build((resident, household) for ...)
    index.build_records(registry.resident_records_with_households(
        RESIDENT_FIELDS, HOUSEHOLD_FIELDS))
    index.search("ヤマダ S45") -> [Hit(resident_id, household_id, level, fields, removed)]

Query grammar
-------------
A query is words separated by whitespace (ASCII or 全角). Every word must match (AND).
Each word is classified, first rule first:

1. 11 digits (half or full width) — a 住民票コード, matched exactly.
   12 digits — refused with `QueryError`: the 個人番号 is not searchable (番号法 limits
   its use) and is not in the index.
2. A date, 和暦 or 西暦, full or partial, as `shared.wareki.parse_partial` reads it:
   `R2.4.1`, `令和2年4月1日`, `S450302`, `昭和45年` / `S45` (a year), `S45.3` (a month),
   `昭和` / `S` (an era), `1970-03-02`, `1970` (a year from 1868 on; a smaller number
   is a 番地). A date typed over several words joins up when the words after the first
   start with a digit: `昭和45年 3月 2日`, `S45 3 2`, `平成 3年`. Matches residents born
   in that range. A date that cannot exist (`S64.1.8`, `R2.2.30`) raises `QueryError`
   with the reason. Note that a word that is exactly an era name or letter (昭和, S, H)
   is a date.
3. Kana only (hiragana, katakana, half-width, with ー) — a reading. Folded with
   `kana_key` (ヴ→ブ, small kana→large, ー dropped, ヂ→ジ …) and matched against the
   フリガナ, 通称カナ and 旧氏カナ.
4. Anything else — written text. Folded with `name_key` (variation selectors dropped,
   異体字 folded: 齋→斎, 邉→辺, 髙→高, 﨑→崎, 𠮷→吉; widths; ASCII upper case) and
   matched against 氏名, 通称 and 旧氏; and folded with `address_key` (大字 dropped,
   丁目/番地/号 → "-", numerals → digits) and matched against the address.
A word that folds to nothing (a lone ー) is ignored; an empty query finds nothing.

How a word matches a field, best first (`MatchLevel`):

    EXACT      equals a whole key: full name, full reading, 大字+番地 (and every filter)
    PART       equals a word of one: surname or given name, or the 大字
    PREFIX     a whole key or one of its words starts with it
    SUBSTRING  a whole key contains it — only for words of 3 characters or more (the
               FTS5 trigram tokenizer); shorter words match at word starts only

Ranking: a resident's level is its worst word's level (each word taking its best field);
EXACT residents first, then PART, PREFIX, SUBSTRING; within a level, living residents
before 除票 (when `include_removed`), then by reading (kana_key order; no reading last),
then birth date, then resident id. 除票 are left out unless `include_removed=True`.

Index layout
------------
A resident's rid is its place in result order (living before 除票, then reading, birth
date, id), spread out so that an upsert can take the middle of a gap between neighbours
(the index renumbers itself if a gap runs out). "Sorted by rid" is therefore "ranked".

    residents(rid, resident_id, household_id, removed, kana_sort, birth, code)
        indexes: resident_id (unique), household_id, birth, code,
                 (removed, kana_sort, birth, resident_id) to place an upsert
    keys(kind, key, whole, rid, field) WITHOUT ROWID, primary key in that order
        one row per folded key: kind k (readings), n (written names), a (addresses);
        whole=1 for a whole value, 0 for each of its words (surname, given name, 大字);
        field = the Resident attribute it came from. An equality on (kind, key, whole)
        yields residents already ranked; keys_resident (rid, kind, key, whole) answers
        "does this resident have a key at this level" with one probe.
    kana_fts, name_fts, address_fts: contentless FTS5 trigram tables over the whole keys
        of 3+ characters, rowid = rid * 8 + field, so that SUBSTRING hits also come out
        ranked, and a page needs only the first few.

Planning and execution: `shared.search.plan`. Building rows: `shared.search.rows`.

Errors: `SearchError` (a record of another town, a duplicate in a build, an SQLite
without FTS5 trigram) and its subclass `QueryError` (also a `ValueError`; the message is
Japanese, for the clerk: what to type instead).
"""

from shared.search.index import Hit, MatchLevel, SearchIndex
from shared.search.query import QueryError, SearchError, Token, TokenKind, parse_query
from shared.search.rows import HOUSEHOLD_FIELDS, RESIDENT_FIELDS

__all__ = [
    "HOUSEHOLD_FIELDS",
    "RESIDENT_FIELDS",
    "Hit",
    "MatchLevel",
    "QueryError",
    "SearchError",
    "SearchIndex",
    "Token",
    "TokenKind",
    "parse_query",
]
