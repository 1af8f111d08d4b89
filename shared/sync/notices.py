"""Notices: small statements the hub signs in cleartext, carried beside the blobs.

A blob is sealed to its town; a notice is not, because replicas that cannot read a town
(a relay, a box whose town is sealed until a clerk logs in) must act on it. Two kinds:

    as-of   the core system's export time of the hub's newest import of a town, and the
            hub writer's sequence number that import's blobs end at ("covers"). A box
            holding every hub blob up to "covers" has the data as of "as_of"; one that
            holds the notice but not the blobs is being starved of newer data. "issued"
            is when the hub signed it (re-signed while the hub runs, so a box can also
            tell the notices themselves stopped coming).
    base    a compaction: the hub sealed a full snapshot of every document of the town
            as its blobs `snapshots` = [first, last] (under the town's current key), and
            every slot (writer, seq ≤ covers[writer]) is inside them. A replica holding
            those snapshot blobs may drop the covered blobs and counts them as held.

Wire and storage form (JSON):

    {"body": {"kind", "town", "n", …fields}, "by": writer id, "sig": hex Ed25519}

signed over "renkei sync notice v1" 0x00 ‖ canonical JSON of the body. "n" orders the
notices of one (town, kind): a replica keeps the one with the highest n it has seen from
the authority (the hub's writer id) and ignores the rest — a notice from anyone else, or
one that does not verify, changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions

from shared.storage import Storage, StorageKey
from shared.sync import identity
from shared.sync.identity import Identity

AS_OF = "as-of"
BASE = "base"
KINDS = (AS_OF, BASE)
_CONTEXT = b"renkei sync notice v1\x00"
MAX_NOTICE_BYTES = 256 * 1024  # a base lists one entry per writer of the town

Authority = Callable[[], str | None]


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Notice:
    body: Mapping[str, Any]
    by: str
    sig: str

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def town(self) -> str:
        return str(self.body.get("town", ""))

    @property
    def n(self) -> int:
        value = self.body.get("n", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def covers(self) -> dict[str, int]:
        raw = self.body.get("covers", {})
        if not isinstance(raw, dict):
            return {}
        return {str(w): s for w, s in raw.items() if isinstance(s, int) and s >= 0}

    @property
    def snapshots(self) -> tuple[int, int] | None:
        """A base's snapshot blobs: the authority's seqs first..last."""
        raw = self.body.get("snapshots")
        if (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(s, int) and s >= 1 for s in raw)
            and raw[0] <= raw[1]
        ):
            return raw[0], raw[1]
        return None

    @property
    def as_of(self) -> str:
        return str(self.body.get("as_of", ""))

    @property
    def issued(self) -> float:
        value = self.body.get("issued", 0)
        return float(value) if isinstance(value, int | float) else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"body": dict(self.body), "by": self.by, "sig": self.sig}

    @classmethod
    def from_json(cls, data: Any) -> Notice | None:
        """None for anything that is not shaped like a notice (ignored, never an error:
        a newer peer may send kinds this one does not know)."""
        if not isinstance(data, dict):
            return None
        body, by, sig = data.get("body"), data.get("by"), data.get("sig")
        if not isinstance(body, dict) or not isinstance(by, str) or not isinstance(sig, str):
            return None
        return cls(body, by, sig)

    def verifies(self) -> bool:
        key = identity.verify_key_of(self.by)
        if key is None:
            return False
        try:
            key.verify(_CONTEXT + _canonical(self.body), bytes.fromhex(self.sig))
        except (ValueError, nacl.exceptions.BadSignatureError):
            return False
        return True


def sign_notice(signer: Identity, kind: str, town: str, n: int, **fields: Any) -> Notice:
    body = {"kind": kind, "town": town, "n": n, **fields}
    signature = signer.signing_key.sign(_CONTEXT + _canonical(body)).signature.hex()
    return Notice(body, signer.writer_id, signature)


def fresh_n() -> int:
    """A notice number that grows across processes and restarts (microseconds)."""
    return time.time_ns() // 1000


def _key(town: str, kind: str) -> StorageKey:
    return ("sync", "notice", town, kind)


def fixed(writer_id: str | None) -> Authority:
    return lambda: writer_id


class NoticeBook:
    """The newest notice of each (town, kind) a replica holds, in its storage. Only the
    authority's notices are kept; `authority` is asked at each use (a box learns the
    hub's key at its first contact)."""

    def __init__(self, storage: Storage, authority: Authority) -> None:
        self.storage = storage
        self.authority = authority
        self.ignored = 0  # notices refused (not the authority's, bad signature, older)

    def get(self, town: str, kind: str) -> Notice | None:
        raw = self.storage.load(_key(town, kind))
        if raw is None:
            return None
        return Notice.from_json(json.loads(raw))

    def for_towns(self, towns: Iterable[str]) -> list[Notice]:
        found = []
        for town in towns:
            for kind in KINDS:
                notice = self.get(town, kind)
                if notice is not None:
                    found.append(notice)
        return found

    def acceptable(self, notice: Notice) -> bool:
        authority = self.authority()
        if authority is None or notice.by != authority or notice.kind not in KINDS:
            return False
        if not notice.town or len(_canonical(notice.body)) > MAX_NOTICE_BYTES:
            return False
        current = self.get(notice.town, notice.kind)
        if current is not None and current.n >= notice.n:
            return False
        return notice.verifies()

    def offer(self, notices: Iterable[Notice], towns: Iterable[str] | None = None) -> list[Notice]:
        """Keep the newer of each; returns the notices kept. `towns` limits which towns'
        notices are accepted (those of the session)."""
        allowed = None if towns is None else set(towns)
        kept = []
        for notice in notices:
            if allowed is not None and notice.town not in allowed:
                continue
            if not self.acceptable(notice):
                self.ignored += 1
                continue
            self.storage.save(
                _key(notice.town, notice.kind), _canonical(notice.to_json())
            )
            kept.append(notice)
        return kept

    def newer_than(self, theirs: Iterable[Notice], towns: Iterable[str]) -> list[Notice]:
        """Mine that are newer than what the peer showed (what it should be told)."""
        shown = {(n.town, n.kind): n.n for n in theirs}
        return [n for n in self.for_towns(towns) if n.n > shown.get((n.town, n.kind), -1)]


STALE_AFTER_S = 36 * 3600  # nightly imports: a statement older than this is overdue


@dataclass(frozen=True, slots=True)
class Freshness:
    """How fresh a replica's data of a town is, from the hub's as-of statements."""

    as_of: str  # the export time of the newest statement whose blobs are all held here
    hub_as_of: str  # the export time of the newest statement held (what the hub has)
    issued: float  # when the hub signed that statement (seconds since the epoch)
    starved: bool  # the hub has newer data than this replica holds
    stale: bool  # no statement from the hub for longer than `stale_after_s`

    @property
    def warned(self) -> bool:
        return self.starved or self.stale


def freshness(
    storage: Storage, town: str, now: float, stale_after_s: float = STALE_AFTER_S
) -> Freshness:
    """Read from the replica's own store (no key needed: notices are cleartext)."""
    newest_raw = storage.load(_key(town, AS_OF))
    held_raw = storage.load(("sync", "as-of-held", town))
    newest = None if newest_raw is None else Notice.from_json(json.loads(newest_raw))
    held = None if held_raw is None else Notice.from_json(json.loads(held_raw))
    if newest is None:
        return Freshness("", "", 0.0, False, False)
    starved = held is None or held.n < newest.n
    return Freshness(
        held.as_of if held is not None else "",
        newest.as_of,
        newest.issued,
        starved,
        now - newest.issued > stale_after_s,
    )
