"""The transport seam: a transport moves opaque messages between named peers.

    send(to, data)       hand a message to the network (may be lost; never blocks)
    receive() -> (sender, data) | None   the next message delivered here, if any

Nothing here knows what the bytes mean (`shared.sync.peer` speaks the protocol over it).
Production transports are request/response HTTP (`cloud.sync_api`, `edge.sync_agent`);
`MemoryNetwork` is the in-memory implementation for tests: seeded, and able to lose,
duplicate and reorder messages, partition peers and restart them (a restarted peer loses
what was delivered to it but not yet received). Its in-flight queue is bounded: a send
beyond `capacity` is dropped, as a full network buffer would.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


class Transport(Protocol):
    def send(self, to: str, data: bytes) -> None: ...

    def receive(self) -> tuple[str, bytes] | None: ...


@dataclass(slots=True)
class Faults:
    loss: float = 0.0  # probability a message is dropped
    duplicate: float = 0.0  # probability a message is delivered twice
    reorder: float = 0.0  # probability the next delivery is a random in-flight message

    @classmethod
    def none(cls) -> Faults:
        return cls()


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    overflowed: int = 0


@dataclass(slots=True)
class _Envelope:
    sender: str
    to: str
    data: bytes


@dataclass(slots=True)
class MemoryNetwork:
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    capacity: int = 10_000
    stats: NetworkStats = field(default_factory=NetworkStats)
    _rng: random.Random = field(init=False)
    _in_flight: list[_Envelope] = field(default_factory=list)
    _inboxes: dict[str, deque[tuple[str, bytes]]] = field(default_factory=dict)
    _cut: set[frozenset[str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def endpoint(self, name: str) -> MemoryTransport:
        self._inboxes.setdefault(name, deque())
        return MemoryTransport(self, name)

    # ------------------------------------------------------------------ faults

    def partition(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Heal one link, or every link and every fault when called without peers."""
        if a is None or b is None:
            self._cut.clear()
            self.faults = Faults.none()
        else:
            self._cut.discard(frozenset((a, b)))

    def partitioned(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._cut

    def restart(self, name: str) -> None:
        """The peer's process died: what was delivered but not received is gone."""
        self._inboxes[name] = deque()

    # ------------------------------------------------------------------ moving

    def _send(self, sender: str, to: str, data: bytes) -> None:
        self.stats.sent += 1
        if len(self._in_flight) >= self.capacity:
            self.stats.overflowed += 1
            return
        self._in_flight.append(_Envelope(sender, to, data))

    def _receive(self, name: str) -> tuple[str, bytes] | None:
        inbox = self._inboxes.get(name)
        return inbox.popleft() if inbox else None

    def in_flight(self) -> int:
        return len(self._in_flight)

    def step(self) -> bool:
        """Deliver (or lose) one in-flight message; False when nothing is in flight."""
        if not self._in_flight:
            return False
        reorder = self.faults.reorder and self._rng.random() < self.faults.reorder
        index = self._rng.randrange(len(self._in_flight)) if reorder else 0
        envelope = self._in_flight.pop(index)
        if self.partitioned(envelope.sender, envelope.to) or envelope.to not in self._inboxes:
            self.stats.lost += 1
            return True
        if self.faults.loss and self._rng.random() < self.faults.loss:
            self.stats.lost += 1
            return True
        if self.faults.duplicate and self._rng.random() < self.faults.duplicate:
            self.stats.duplicated += 1
            self._in_flight.append(_Envelope(envelope.sender, envelope.to, envelope.data))
        self._inboxes[envelope.to].append((envelope.sender, envelope.data))
        self.stats.delivered += 1
        return True


@dataclass(slots=True)
class MemoryTransport:
    network: MemoryNetwork
    name: str

    def send(self, to: str, data: bytes) -> None:
        self.network._send(self.name, to, data)

    def receive(self) -> tuple[str, bytes] | None:
        return self.network._receive(self.name)
