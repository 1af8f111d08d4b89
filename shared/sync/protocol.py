"""The sync protocol's decisions: what to send next, from what the peer said.

One session, initiator ⇄ responder (same code hub↔box and box↔box):

    initiator                                   responder
    Hello(session, peer, towns, versions)  ──▶  negotiate the version; issue a nonce
                                           ◀──  Welcome(nonce, towns, have)
    Exchange(round 1, nonce, have,              verify signature, authorise the peer,
             blobs the responder lacks)    ──▶  consume the nonce, store the blobs
                                           ◀──  Reply(next nonce, have, blobs the
                                                initiator lacks, more?)
    … until the initiator has nothing left to send and the reply says no more.

Both sides send only what the other's have-vector does not cover, 支援措置 first, in
bounded batches. A nonce is used once: a replayed or duplicated exchange is refused
("nonce") and changes nothing, and the initiator starts a new session. Re-delivered
blobs are no-ops in the log. Each side tracks what it sent in the session and never sends
a slot twice, so a session ends even when the peer refuses a blob.

Notices (protocol 2): the welcome carries the responder's newest signed notices for the
session's towns, every exchange the initiator's; each side keeps what is newer and from
the authority (`BlobLog.accept_notices`). An initiator holding a newer notice than the
welcome showed sends one exchange even when no blob is missing, so notices spread like
blobs. `Initiator(ack=True)` also always sends one exchange: it is how a responder learns
a quiet peer's have-vector and that it is alive (the hub's replica-health view and
compaction rely on it; `Responder(observe=…)` hears of every authorised exchange).

Nothing here does I/O beyond the blob log it is given; transports (`shared.sync.peer`
over a `Transport`, `cloud.sync_api` and `edge.sync_agent` over HTTP) move the bytes.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from shared.sync.identity import Identity
from shared.sync.log import BlobLog, BlobRef, Have, Outcome
from shared.sync.messages import (
    MIN_PROTOCOL,
    NOTICES_SINCE,
    PROTOCOL,
    Exchange,
    Hello,
    Message,
    Refusal,
    Reply,
    Welcome,
    sign,
    signature_ok,
)


@dataclass(frozen=True, slots=True)
class Limits:
    batch_blobs: int = 64
    batch_bytes: int = 4 * 1024 * 1024
    max_rounds: int = 100_000
    max_message_bytes: int = 64 * 1024 * 1024  # an inbound message above this is refused


Versions = tuple[int, int]  # (oldest, newest) protocol version a peer speaks
CURRENT: Versions = (MIN_PROTOCOL, PROTOCOL)


def negotiate(mine: Versions, theirs: Versions) -> int | None:
    """The newest version both speak, or None."""
    chosen = min(mine[1], theirs[1])
    return chosen if chosen >= max(mine[0], theirs[0]) else None


class LazyBlobs(Sequence[bytes]):
    """A reply's blobs, loaded from the log one at a time as they are streamed."""

    def __init__(self, log: BlobLog, refs: Sequence[BlobRef]) -> None:
        self._log = log
        self.refs = list(refs)

    def __len__(self) -> int:
        return len(self.refs)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self._log.load(r) for r in self.refs[index]]
        return self._log.load(self.refs[index])

    def __iter__(self) -> Iterator[bytes]:
        for ref in self.refs:
            yield self._log.load(ref)


# ---------------------------------------------------------------------------- nonces


@dataclass(frozen=True, slots=True)
class _Issued:
    session: str
    expires: float
    protocol: int
    towns: tuple[str, ...]


class NonceBook:
    """Server-issued single-use nonces, bounded in number and lifetime (in memory: a
    restarted responder forgets them, and initiators start over with a hello)."""

    def __init__(self, capacity: int = 4096, ttl_s: float = 300.0) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._issued: OrderedDict[str, _Issued] = OrderedDict()

    def issue(self, session: str, now: float, protocol: int, towns: tuple[str, ...]) -> str:
        nonce = secrets.token_hex(16)
        self._issued[nonce] = _Issued(session, now + self.ttl_s, protocol, towns)
        while len(self._issued) > self.capacity:
            self._issued.popitem(last=False)
        return nonce

    def consume(self, nonce: str, session: str, now: float) -> _Issued | None:
        issued = self._issued.pop(nonce, None)
        if issued is None or issued.session != session or issued.expires < now:
            return None
        return issued

    def __len__(self) -> int:
        return len(self._issued)


# ---------------------------------------------------------------------------- responder


def _all_peers(peer: str) -> bool:
    return True


Observer = Callable[[str, tuple[str, ...], Have, float], None]  # peer, towns, have, now
Placement = Callable[[str, str], bool]  # (peer, town) → may this peer sync this town here


def offered_towns(log: BlobLog, asked: Sequence[str], any_town: bool) -> tuple[str, ...]:
    """The towns a replica exchanges for a request: what was asked (and, with
    `any_town`, every town it holds), limited to the towns it accepts (a log that
    accepts any town — the hub, a relay — takes all that are asked)."""
    wanted = set(asked)
    if any_town:
        wanted |= set(log.towns()) if log.accepted_towns is None else set(log.accepted_towns)
    return tuple(sorted(t for t in wanted if log.accepts(t)))


class Responder:
    def __init__(
        self,
        log: BlobLog,
        peer_id: str,
        *,
        limits: Limits = Limits(),
        nonces: NonceBook | None = None,
        authorize: Callable[[str], bool] = _all_peers,
        versions: Versions = CURRENT,
        observe: Observer | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.log = log
        self.placement = placement
        self.peer_id = peer_id
        self.limits = limits
        self.nonces = nonces or NonceBook()
        self.authorize = authorize
        self.versions = versions
        self.observe = observe

    def handle(self, message: Message, now: float) -> Message:
        if isinstance(message, Hello):
            return self._hello(message, now)
        if isinstance(message, Exchange):
            return self._exchange(message, now)
        return Refusal(message.session, "request", "expected a hello or an exchange")

    def _hello(self, hello: Hello, now: float) -> Message:
        chosen = negotiate(self.versions, (hello.min_protocol, hello.protocol))
        if chosen is None:
            return Refusal(
                hello.session,
                "protocol",
                f"protocol versions {hello.min_protocol}..{hello.protocol} not supported "
                f"(this side speaks {self.versions[0]}..{self.versions[1]})",
                protocol=min(self.versions[1], hello.protocol),
            )
        towns = offered_towns(self.log, hello.towns, hello.any_town)
        if self.placement is not None:
            refused = [t for t in hello.towns if not self.placement(hello.peer, t)]
            if refused:
                return Refusal(
                    hello.session, "auth", f"towns not placed with this peer: {refused}",
                    protocol=chosen,
                )  # fmt: skip
            towns = tuple(t for t in towns if self.placement(hello.peer, t))
        nonce = self.nonces.issue(hello.session, now, chosen, towns)
        notices = tuple(self.log.notices.for_towns(towns)) if chosen >= NOTICES_SINCE else ()
        return Welcome(
            hello.session, nonce, self.peer_id, towns, self.log.have(towns), chosen, notices
        )

    def _exchange(self, exchange: Exchange, now: float) -> Message:
        def refuse(code: str, text: str) -> Refusal:
            return Refusal(exchange.session, code, text, exchange.round, exchange.protocol)

        issued = self.nonces.consume(exchange.nonce, exchange.session, now)
        if issued is None:
            return refuse("nonce", "unknown, used or expired nonce; start with a hello")
        if exchange.protocol != issued.protocol:
            return refuse("protocol", "the exchange's protocol differs from the welcome's")
        if not signature_ok(exchange):
            return refuse("auth", "the exchange is not signed by its peer id")
        if not self.authorize(exchange.peer):
            return refuse("auth", "peer not enrolled")
        if not set(exchange.towns) <= set(issued.towns):
            return refuse("request", "towns outside the session")
        if self.placement is not None and not all(
            self.placement(exchange.peer, t) for t in exchange.towns
        ):
            return refuse("auth", "towns not placed with this peer")
        if exchange.notices:
            self.log.accept_notices(exchange.notices, exchange.towns)
        results = self.log.add_many(exchange.blobs)
        stored = sum(1 for r in results if r.outcome is Outcome.STORED)
        refs, more = self.log.missing_for(
            exchange.have,
            exchange.towns,
            max_blobs=self.limits.batch_blobs,
            max_bytes=self.limits.batch_bytes,
        )
        nonce = self.nonces.issue(exchange.session, now, issued.protocol, issued.towns)
        if self.observe is not None:
            self.observe(exchange.peer, exchange.towns, exchange.have, now)
        return Reply(
            exchange.session,
            exchange.round,
            nonce,
            self.log.have(exchange.towns),
            LazyBlobs(self.log, refs),
            more,
            stored,
            issued.protocol,
        )


# ---------------------------------------------------------------------------- initiator


class State(enum.Enum):
    NEW = "new"
    AWAIT_WELCOME = "await-welcome"
    AWAIT_REPLY = "await-reply"
    DONE = "done"
    FAILED = "failed"


@dataclass(slots=True)
class Stats:
    rounds: int = 0
    sent: int = 0  # blobs sent
    received: int = 0  # blobs received
    stored: int = 0  # of those, new here
    refused: int = 0  # of those, refused here


@dataclass(slots=True)
class Initiator:
    """One session from the initiating side. `receive` returns the next message to send,
    or None (done, failed, or a stale message ignored: see `state`)."""

    log: BlobLog
    identity: Identity
    towns: Sequence[str] | None  # None: all the responder offers (that the log accepts)
    session: str = field(default_factory=lambda: secrets.token_hex(8))
    limits: Limits = field(default_factory=Limits)
    versions: Versions = CURRENT
    ack: bool = False  # send at least one exchange (a heartbeat with this side's have)
    state: State = State.NEW
    error: str = ""
    refusal_code: str = ""
    protocol: int = 0
    peer: str = ""
    stats: Stats = field(default_factory=Stats)
    _round: int = 0
    _towns: tuple[str, ...] = ()
    _sent: set[tuple[str, str, int]] = field(default_factory=set)
    _told: Have | None = None  # the have sent in the last exchange

    def start(self) -> Hello:
        self.state = State.AWAIT_WELCOME
        if self.towns is None:
            towns, any_town = tuple(self.log.towns()), True
        else:
            towns, any_town = tuple(self.towns), False
        mine = self.versions
        return Hello(self.session, self.identity.writer_id, towns, any_town, mine[1], mine[0])

    def receive(self, message: Message) -> Message | None:
        if message.session != self.session or self.state in (State.DONE, State.FAILED):
            return None
        if isinstance(message, Refusal):
            if message.round != self._round:
                return None  # refusal of a duplicated, older request
            self._fail(f"refused ({message.code}): {message.message}", message.code)
            return None
        if isinstance(message, Welcome) and self.state is State.AWAIT_WELCOME:
            return self._welcome(message)
        if isinstance(message, Reply) and self.state is State.AWAIT_REPLY:
            if message.round != self._round:
                return None
            return self._reply(message)
        return None

    def _fail(self, error: str, code: str = "") -> None:
        self.state = State.FAILED
        self.error = error
        self.refusal_code = code

    def _welcome(self, welcome: Welcome) -> Message | None:
        if not self.versions[0] <= welcome.protocol <= self.versions[1]:
            self._fail(f"the responder chose protocol {welcome.protocol}", "protocol")
            return None
        self.protocol = welcome.protocol
        self.peer = welcome.peer
        wanted = None if self.towns is None else set(self.towns)
        self._towns = tuple(
            t for t in welcome.towns if self.log.accepts(t) and (wanted is None or t in wanted)
        )
        self.log.accept_notices(welcome.notices, self._towns)
        tell = bool(self.log.notices.newer_than(welcome.notices, self._towns))
        return self._next(
            welcome.nonce,
            welcome.have,
            more=self.log.lacks(welcome.have, self._towns),
            force=self.ack or (tell and self.protocol >= NOTICES_SINCE),
        )

    def _reply(self, reply: Reply) -> Message | None:
        if reply.blobs:
            results = self.log.add_many(reply.blobs)
            self.stats.received += len(results)
            self.stats.stored += sum(1 for r in results if r.outcome is Outcome.STORED)
            self.stats.refused += sum(1 for r in results if r.outcome is Outcome.REFUSED)
        return self._next(reply.nonce, reply.have, more=reply.more)

    def _next(
        self, nonce: str, their: Have, *, more: bool, force: bool = False
    ) -> Message | None:
        refs, _ = self.log.missing_for(
            their,
            self._towns,
            max_blobs=self.limits.batch_blobs,
            max_bytes=self.limits.batch_bytes,
            exclude=self._sent,
        )
        # An acknowledging session ends by telling the responder what it now holds, if
        # that changed since the last exchange (it received blobs).
        told = not self.ack or self._told is None or self._told == self.log.have(self._towns)
        if not refs and not more and not force and told:
            self.state = State.DONE
            return None
        if self._round >= self.limits.max_rounds:
            self._fail("too many rounds in one session", "rounds")
            return None
        self._round += 1
        self.stats.rounds = self._round
        self.stats.sent += len(refs)
        self._sent.update(r.slot for r in refs)
        self.state = State.AWAIT_REPLY
        self._told = self.log.have(self._towns)
        exchange = Exchange(
            self.session,
            self._round,
            nonce,
            self.identity.writer_id,
            self._towns,
            self._told,
            [self.log.load(r) for r in refs],
            protocol=self.protocol,
            notices=(
                tuple(self.log.notices.for_towns(self._towns))
                if self.protocol >= NOTICES_SINCE
                else ()
            ),
        )
        return sign(exchange, self.identity.signing_key)
