"""The box's sync agent: keeps this box's blob log reconciled with the hub and with other
boxes, and serves box↔box sync on a peer port.

- **Push within seconds.** The agent watches the log (a town worker or an import in
  another process writes to the same store; `BlobLog.refresh` notices) and syncs with
  every reachable peer `push_delay_s` after a change.
- **Pull continuously**, every `pull_interval_s`, with every peer.
- **Back off** while a peer is down: exponential from `backoff_initial_s` to
  `backoff_max_s`, with jitter; other peers are unaffected — with the hub gone, boxes on
  a LAN keep syncing with each other (each relays towns it cannot read).
- **Full reconcile nightly** (`nightly`, local time): the whole log is re-verified and
  every peer synced, backoff or not.
- **支援措置 first**: every exchange sends the `blocks` documents before anything else
  (`BlobLog.missing_for`); towns are synced own town first.
- **Acknowledge**: at least every `ack_interval_s` a session with each peer sends one
  exchange even when nothing is missing, so the hub hears this box's have-vector (its
  replica-health view; compaction trims only what every recent replica acknowledged).
- **Notices**: the hub's signed as-of statements and compaction bases travel in every
  session; the box trusts only the pinned hub writer's (`BoxReplica.hub_writer_id`).

Configuration: `AgentConfig`; a box reads the optional `sync.json` in its data folder
({"peers": [urls], "listen": "host:port", "towns": [codes], "pull_interval_s": …}).
Status for the health view: `SyncAgent.status_json()`.

Errors: `AgentError` (a session that could not complete); HTTP errors are counted as a
peer being down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from cloud.sync_api import (
    MEDIA_TYPE,
    SyncService,
    armed,
    enrolled_peers,
    failpoint,
    separate_towns,
    sync_routes,
)
from edge.replica import BoxReplica
from shared.storage import Storage
from shared.sync.errors import SyncError, WireError
from shared.sync.identity import Identity
from shared.sync.messages import Message, Reply, decode, encode
from shared.sync.notices import Authority
from shared.sync.protocol import Initiator, Limits, State
from shared.sync.replica import SyncReplica, load_or_create_identity
from shared.sync.scopes import town_of

log = logging.getLogger(__name__)

CONFIG_FILE = "sync.json"


class AgentError(SyncError):
    """A sync session with a peer could not complete."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    own_town: str
    hub_url: str | None = None
    peers: tuple[str, ...] = ()  # other boxes' peer ports, e.g. http://192.0.2.7:8702
    towns: tuple[str, ...] | None = None  # None: every town the federation has
    listen: tuple[str, int] | None = None  # serve box↔box sync here
    push_delay_s: float = 0.5
    watch_interval_s: float = 1.0
    pull_interval_s: float = 5.0
    ack_interval_s: float = 60.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    nightly: dt.time = dt.time(2, 30)
    request_timeout_s: float = 30.0
    limits: Limits = field(default_factory=Limits)

    @property
    def urls(self) -> tuple[str, ...]:
        return ((self.hub_url,) if self.hub_url else ()) + self.peers

    @classmethod
    def for_box(cls, data_dir: Path, hub_url: str | None, own_town: str) -> AgentConfig:
        """The box's settings, with `sync.json` in its data folder if present."""
        path = data_dir / CONFIG_FILE
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        listen = data.pop("listen", None)
        towns = data.pop("towns", None)
        numbers = {k: float(v) for k, v in data.items() if k.endswith("_s")}
        return cls(
            own_town=own_town,
            hub_url=data.get("hub", hub_url),
            peers=tuple(data.get("peers", ())),
            towns=None if towns is None else tuple(towns),
            listen=None if listen is None else _host_port(listen),
            **numbers,  # type: ignore[arg-type]
        )


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


@dataclass
class PeerStatus:
    url: str
    last_ok: float | None = None  # wall-clock time of the last completed sync
    last_error: str = ""
    failures: int = 0
    next_attempt: float = 0.0  # monotonic
    sessions: int = 0
    blobs_in: int = 0
    blobs_out: int = 0


def run_session(
    client: httpx.Client,
    service: SyncService,
    identity: Identity,
    town: str,
    *,
    limits: Limits,
    attempts: int = 3,
    ack: bool = False,
) -> Initiator:
    """One town's session with the peer behind `client`; starts over (new hello) when a
    nonce was stale, e.g. after the peer restarted or a request was replayed."""
    initiator = Initiator(service.log, identity, (town,), limits=limits, ack=ack)
    for _ in range(attempts):
        initiator = Initiator(service.log, identity, (town,), limits=limits, ack=ack)
        message: Message | None = initiator.start()
        path = "hello"
        while message is not None:
            response = client.post(
                f"/api/sync/{town}/{path}",
                content=encode(message),
                headers={"content-type": MEDIA_TYPE},
            )
            if response.headers.get("content-type", "").split(";")[0] != MEDIA_TYPE:
                response.raise_for_status()
                raise AgentError(f"unexpected answer ({response.status_code}) from the peer")
            try:
                answer = decode(response.content, max_total=limits.max_message_bytes)
            except WireError as exc:
                raise AgentError(f"garbled answer from the peer: {exc}") from exc
            with service.lock:
                if isinstance(answer, Reply) and answer.blobs:
                    _apply_failpoints(service, answer)
                message = initiator.receive(answer)
            path = "exchange"
        if initiator.state is State.DONE:
            return initiator
        if initiator.state is not State.FAILED:
            raise AgentError("the peer's answer did not belong to the session")
        if initiator.refusal_code != "nonce":
            break
    raise AgentError(initiator.error)


def _apply_failpoints(service: SyncService, reply: Reply) -> None:
    """Tests and drills kill the box while it stores what a peer sent
    (`RENKEI_SYNC_FAILPOINT`, as `cloud.sync_api`): apply.before-store, apply.mid-store
    (half of the reply's blobs stored), apply.after-store (all stored, not yet answered)."""
    failpoint("apply.before-store")
    if len(reply.blobs) >= 2 and armed("apply.mid-store"):
        service.log.add_many(reply.blobs[: len(reply.blobs) // 2])
        failpoint("apply.mid-store")
    if armed("apply.after-store"):
        service.log.add_many(reply.blobs)
        failpoint("apply.after-store")


class _PeerServer(uvicorn.Server):
    """uvicorn inside the box's own event loop: the box process handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class SyncAgent:
    def __init__(
        self,
        storage: Storage,
        config: AgentConfig,
        *,
        identity: Identity | None = None,
        replica: SyncReplica | None = None,
        authority: Authority | str | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.identity = identity or load_or_create_identity(storage)
        if authority is None:
            authority = BoxReplica(storage).hub_writer_id
        self.replica = replica or SyncReplica(
            storage,
            self.identity,
            towns=config.towns if config.towns is not None else self.holds,
            authority=authority,
        )
        self.service = SyncService(
            self.replica.log,
            self.identity.writer_id,
            config.limits,
            authorize=enrolled_peers(storage),
        )
        self.peers = {url: PeerStatus(url) for url in config.urls}
        self.last_nightly: dt.date | None = None
        self._changed = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._serving: asyncio.Task[None] | None = None
        self._server: _PeerServer | None = None
        self._inflight: asyncio.Future[Any] | None = None
        self._stopping = threading.Event()
        self._rng = random.Random()
        self._acked: dict[tuple[str, str], float] = {}  # (peer url, town) → monotonic

    # ------------------------------------------------------------------ towns

    def holds(self, town: str) -> bool:
        """Placement: every town of the federation — but of a town that keeps 個人番号
        out of its partners' replicas, only its partner copy, unless it is this box's."""
        return town == self.config.own_town or town not in separate_towns(self.storage)

    def towns(self, client: httpx.Client | None = None) -> list[str]:
        """The towns to sync, own town first: the configured ones, or every town the
        federation lists (from the hub, else as last seen) and every town in the log,
        each as placed (`holds`)."""
        if self.config.towns is not None:
            towns = set(self.config.towns)
        else:
            towns = set(self.replica.log.towns()) | {self.config.own_town}
            saved = self.storage.load(("federation", "towns"))
            if saved is not None:
                towns |= set(json.loads(saved))
            if client is not None:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    response = client.get("/api/federation")
                    if response.status_code == 200:
                        towns |= set(response.json()["towns"])
            separate = separate_towns(self.storage)
            towns = {t if self.holds(t) else separate[t] for t in towns}
        return sorted(towns, key=lambda t: (town_of(t) != self.config.own_town, t))

    # ------------------------------------------------------------------ syncing

    def notify_local_change(self) -> None:
        """A local edit was stored: push soon (thread-safe)."""
        self._changed.set()
        if self._wake is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def sync_peer(self, url: str) -> list[Initiator]:
        """Sync every town with one peer (blocking). Raises on failure."""
        status = self.peers.setdefault(url, PeerStatus(url))
        self._refresh()  # a town worker or an import may have written since
        done = []
        timeout = httpx.Timeout(self.config.request_timeout_s, connect=5.0)
        with httpx.Client(base_url=url, timeout=timeout) as client:
            for town in self.towns(client if url == self.config.hub_url else None):
                if self._stopping.is_set():
                    raise AgentError("the agent is stopping")
                now = time.monotonic()
                last = self._acked.get((url, town))
                ack = last is None or now - last >= self.config.ack_interval_s
                initiator = run_session(
                    client, self.service, self.identity, town, limits=self.config.limits,
                    ack=ack,
                )  # fmt: skip
                if ack:
                    self._acked[(url, town)] = now
                status.blobs_in += initiator.stats.stored
                status.blobs_out += initiator.stats.sent
                done.append(initiator)
        status.sessions += 1
        status.last_ok = time.time()
        return done

    def attempt(self, url: str) -> bool:
        """Sync with one peer now; a failure is counted and backs the peer off."""
        status = self.peers[url]
        try:
            self.sync_peer(url)
        except (httpx.HTTPError, SyncError, OSError) as exc:
            status.failures += 1
            status.last_error = f"{type(exc).__name__}: {exc}"
            delay = min(
                self.config.backoff_max_s,
                self.config.backoff_initial_s * 2 ** (status.failures - 1),
            )
            status.next_attempt = time.monotonic() + delay * self._rng.uniform(0.8, 1.2)
            log.info("sync with %s failed (%s); next attempt in %.1f s", url, exc, delay)
            return False
        status.failures = 0
        status.last_error = ""
        status.next_attempt = time.monotonic() + self.config.pull_interval_s
        return True

    def full_reconcile(self) -> list[str]:
        """The nightly pass: re-verify the whole log, then sync every peer regardless of
        backoff. Returns the log problems found (also logged)."""
        with self.service.lock:
            problems = self.replica.log.verify_all()
        for problem in problems:
            log.error("blob log: %s", problem)
        for url in self.peers:
            self.attempt(url)
        return problems

    def _due(self, now: float) -> list[str]:
        return [url for url, s in self.peers.items() if now >= s.next_attempt]

    async def run(self) -> None:
        """The supervised loop (one per box)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            changed = await self._in_thread(self._refresh)
            if changed or self._changed.is_set():
                self._changed.clear()
                await asyncio.sleep(self.config.push_delay_s)  # let a burst of edits land
                now = time.monotonic()
                for status in self.peers.values():
                    if status.failures == 0:
                        status.next_attempt = min(status.next_attempt, now)
            if self._nightly_due():
                self.last_nightly = dt.date.today()
                await self._in_thread(self.full_reconcile)
            for url in self._due(time.monotonic()):
                await self._in_thread(self.attempt, url)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.watch_interval_s)

    async def _in_thread(self, func: Any, *args: Any) -> Any:
        """Run blocking work in a thread, remembered so `stop` can wait for it (the store
        must not close under a session)."""
        assert self._loop is not None
        self._inflight = self._loop.run_in_executor(None, func, *args)
        try:
            return await asyncio.shield(self._inflight)
        finally:
            if self._inflight is not None and self._inflight.done():
                self._inflight = None

    def _refresh(self) -> bool:
        with self.service.lock:
            return self.replica.log.refresh()

    def _nightly_due(self) -> bool:
        now = dt.datetime.now()
        return now.time() >= self.config.nightly and self.last_nightly != now.date()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.last_nightly = dt.date.today()  # a box starting at night syncs anyway
        self._runner = asyncio.create_task(self.run())
        if self.config.listen is not None:
            host, port = self.config.listen
            app = Starlette(routes=sync_routes(lambda request: self.service))
            self._server = _PeerServer(
                uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
            )
            self._serving = asyncio.create_task(self._server.serve())
            while not self._server.started and not self._serving.done():
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._runner is not None:
            self._runner.cancel()
        if self._inflight is not None:
            with contextlib.suppress(Exception):
                await self._inflight
        for task in (self._runner, self._serving):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = self._serving = None

    def status_json(self) -> dict[str, Any]:
        return {
            "peer_id": self.identity.writer_id,
            "towns": {t: self.replica.log.count(t) for t in self.replica.log.towns()},
            "pending": {f"{t}/{d}": len(s) for (t, d), s in self.replica.pending().items()},
            "flags": [dataclasses.asdict(f) for f in self.replica.flags],
            "peers": {url: dataclasses.asdict(s) for url, s in self.peers.items()},
        }


def connect_peers(*agents: SyncAgent) -> None:
    """Enrol agents' identities with each other (tests and the enrolment step)."""
    from cloud.sync_api import enrol_peer

    for agent in agents:
        for other in agents:
            if other is not agent:
                enrol_peer(agent.storage, other.identity.writer_id)
