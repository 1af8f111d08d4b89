"""The protocol driven over a message `Transport`: sessions, time-outs and retries.

A `SyncPeer` answers hellos and exchanges from anyone (as responder) and runs the
sessions it starts (as initiator). Time is whatever the caller says it is (`tick`), so
tests control it. A session that hears nothing for `timeout` seconds, or is refused for a
stale nonce (the responder restarted, or a duplicate consumed it), starts over with a new
hello, at most `attempts` times; everything it already transferred stays transferred.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.sync.errors import WireError
from shared.sync.identity import Identity
from shared.sync.log import BlobLog
from shared.sync.messages import Exchange, Hello, Message, decode, encode
from shared.sync.protocol import CURRENT, Initiator, Limits, NonceBook, Responder, State, Versions
from shared.sync.transport import Transport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Attempt:
    peer: str
    initiator: Initiator
    started: float
    last_heard: float
    attempt: int


@dataclass(slots=True)
class Outcome:
    peer: str
    state: State
    attempts: int
    rounds: int
    error: str = ""


@dataclass(slots=True)
class SyncPeer:
    name: str
    log: BlobLog
    identity: Identity
    transport: Transport
    towns: Sequence[str] | None = None
    limits: Limits = field(default_factory=Limits)
    versions: Versions = CURRENT
    timeout: float = 10.0
    attempts: int = 5
    now: float = 0.0
    responder: Responder = field(init=False)
    sessions: dict[str, Attempt] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    received: int = 0
    garbled: int = 0

    def __post_init__(self) -> None:
        self.responder = Responder(
            self.log,
            self.identity.writer_id,
            limits=self.limits,
            nonces=NonceBook(),
            versions=self.versions,
        )

    # ------------------------------------------------------------------ sessions

    def sync_with(self, peer: str, attempt: int = 1) -> str:
        initiator = Initiator(
            self.log, self.identity, self.towns, limits=self.limits, versions=self.versions
        )
        self.sessions[initiator.session] = Attempt(peer, initiator, self.now, self.now, attempt)
        self._send(peer, initiator.start())
        return initiator.session

    def busy_with(self, peer: str) -> bool:
        return any(a.peer == peer for a in self.sessions.values())

    def _send(self, peer: str, message: Message) -> None:
        self.transport.send(peer, encode(message))

    def _finish(self, session: str, attempt: Attempt) -> None:
        del self.sessions[session]
        initiator = attempt.initiator
        retry = initiator.state is State.FAILED and initiator.refusal_code in ("nonce", "")
        if retry and attempt.attempt < self.attempts:
            self.sync_with(attempt.peer, attempt.attempt + 1)
            return
        self.outcomes.append(
            Outcome(
                attempt.peer,
                initiator.state,
                attempt.attempt,
                initiator.stats.rounds,
                initiator.error,
            )
        )

    # ------------------------------------------------------------------ driving

    def poll(self, limit: int = 1000) -> int:
        """Handle up to `limit` received messages; returns how many were handled."""
        handled = 0
        while handled < limit:
            item = self.transport.receive()
            if item is None:
                break
            sender, data = item
            handled += 1
            self.received += 1
            try:
                message = decode(data, max_total=self.limits.max_message_bytes)
            except WireError as exc:
                self.garbled += 1
                log.warning("%s: garbled message from %s: %s", self.name, sender, exc)
                continue
            if isinstance(message, Hello | Exchange):
                self._send(sender, self.responder.handle(message, self.now))
                continue
            attempt = self.sessions.get(message.session)
            if attempt is None or attempt.peer != sender:
                continue  # a late answer to a session already over
            attempt.last_heard = self.now
            reply = attempt.initiator.receive(message)
            if reply is not None:
                self._send(sender, reply)
            elif attempt.initiator.state in (State.DONE, State.FAILED):
                self._finish(message.session, attempt)
        return handled

    def tick(self, seconds: float) -> None:
        """Advance time; sessions silent for `timeout` give up and start over."""
        self.now += seconds
        for session, attempt in list(self.sessions.items()):
            if self.now - attempt.last_heard >= self.timeout:
                attempt.initiator.state = State.FAILED
                attempt.initiator.error = "timed out"
                self._finish(session, attempt)
