"""Peers on the LAN: who a discovered advertiser really is, and whether it is still there.

Discovery (edge/discovery.py) only says that something on the LAN *claims* to be a Renkei
box; it never grants anything. Every advertiser gets a `Peer` whose lifecycle is

    DISCOVERED ──▶ VERIFIED ──▶ GONE      (goodbye, or no answer to the liveness check)
        │   └────▶ UNKNOWN     answers, but is not enrolled or does not speak Renkei
        └────────▶ REFUSED     claims enrolment, but the proof fails (forged, expired,
                               another root, replayed, relayed, hints that do not match)

and only a VERIFIED peer is ever handed on (`on_verified`, e.g. `offer_to_agent`, which
admits its sync id and adds it to the sync agent). UNKNOWN and REFUSED advertisers are
shown (GET /api/lan) and rechecked now and then, never synced with.

Verification (`verify_answer`, pure): the caller sends a fresh nonce to the advertiser's
`GET /api/identity` over HTTPS (edge/identity_api.py has the wire format); the answer is
trusted only if the box certificate chains to the pinned federation root key and is valid
now, the statement is signed by the certified box key, echoes the nonce, names the
certificate and the TLS certificate the caller actually saw, and agrees with the TXT hints.
A peer whose certified key is on the revocation list this box holds (edge/revocations.py)
is REFUSED too, at its next liveness check once the list arrives; a VERIFIED peer so
refused is handed to `on_refused` (`withdraw_from_agent`: its sync admission ends).

Liveness: a VERIFIED peer is asked again (new nonce, full check) every
`liveness_interval_s`; after `liveness_failures` unanswered checks in a row it is GONE. A
SIGKILLed box or a pulled cable sends no mDNS goodbye, so this check is what notices:
with the defaults (8 s, 4 s time-out, 2 failures) within 24 s (`Liveness.worst_case_s`).

Errors:

    PeerError
     ├── Unreachable          no answer (refused, timed out): counts against liveness
     ├── NotRenkei            answers, but not as a Renkei box (no TLS, no /api/identity)
     ├── NotEnrolled          a Renkei box that is not enrolled: an unknown device
     └── VerificationFailed   claims enrolment but the proof fails
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nacl.exceptions
from nacl.signing import VerifyKey

from edge.identity_api import (
    NONCE_BYTES,
    PROTOCOL,
    IdentityFormatError,
    Statement,
    certificate_fingerprint,
)
from shared.crypto import Certificate, CryptoError, verify_box_certificate
from shared.sync.identity import verify_key_of

if TYPE_CHECKING:
    from edge.sync_agent import SyncAgent

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024


class PeerError(Exception):
    """A discovered advertiser could not be verified (see the module docstring)."""


class Unreachable(PeerError):
    pass


class NotRenkei(PeerError):
    pass


class NotEnrolled(PeerError):
    pass


class VerificationFailed(PeerError):
    pass


class PeerState(enum.Enum):
    DISCOVERED = "discovered"
    VERIFIED = "verified"
    UNKNOWN = "unknown"
    REFUSED = "refused"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Hint:
    """What the advertisement's TXT record claims (checked against the proof)."""

    box: str = ""
    town: str = ""
    fingerprint: str = ""

    @classmethod
    def from_txt(cls, txt: Mapping[str, str]) -> Hint:
        return cls(txt.get("box", ""), txt.get("town", ""), txt.get("fp", ""))


@dataclass(frozen=True, slots=True)
class VerifiedPeer:
    box: str
    town: str
    name: str
    address: str
    port: int
    certificate: str  # fingerprint
    sync_peer: str
    sync_port: int | None
    holdings: dict[str, int]

    @property
    def sync_url(self) -> str:
        return f"http://{self.address}:{self.sync_port}" if self.sync_port else ""

    def fresher_than(self, mine: Mapping[str, int]) -> list[str]:
        """Towns of which the peer holds more blobs than `mine` (a hint: the sync
        protocol itself reconciles exactly)."""
        return sorted(t for t, n in self.holdings.items() if n > mine.get(t, 0))


def verify_answer(
    answer: object,
    *,
    nonce: str,
    root: VerifyKey,
    now: datetime,
    tls_der: bytes | None,
    hint: Hint = Hint(),
) -> tuple[Statement, Certificate]:
    """Check an /api/identity answer (pure). Raises NotEnrolled, NotRenkei or
    VerificationFailed; returns the verified statement and certificate."""
    if not isinstance(answer, dict) or answer.get("protocol") != PROTOCOL:
        raise NotRenkei("not a Renkei identity answer")
    if answer.get("enrolled") is not True:
        raise NotEnrolled(f"box {answer.get('box')!r} says it is not enrolled")
    try:
        cert = Certificate.from_json(answer.get("certificate") or {})
        statement = Statement.from_json(answer.get("statement"))
        signature = bytes.fromhex(str(answer.get("signature", "")))
    except (CryptoError, IdentityFormatError, ValueError) as exc:
        raise VerificationFailed(f"malformed proof: {exc}") from exc
    try:
        verify_box_certificate(cert, root, now=now)
    except CryptoError as exc:
        raise VerificationFailed(f"certificate: {exc}") from exc
    try:
        cert.verify_key.verify(statement.signed_bytes(), signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise VerificationFailed("statement not signed by the certified box key") from exc
    if statement.nonce != nonce:
        raise VerificationFailed("the answer is for another nonce (a replay)")
    if (statement.box, statement.town) != (cert.subject, cert.town):
        raise VerificationFailed("the statement names another box than its certificate")
    if statement.certificate != certificate_fingerprint(cert):
        raise VerificationFailed("the statement names another certificate")
    if tls_der is None or statement.tls != hashlib.sha256(tls_der).hexdigest():
        raise VerificationFailed("the answer was made for another TLS channel (relayed?)")
    for claimed, proven in (
        (hint.box, cert.subject),
        (hint.town, cert.town),
        (hint.fingerprint, statement.certificate),
    ):
        if claimed and claimed != proven:
            raise VerificationFailed(f"advertised {claimed!r} but proved {proven!r}")
    if statement.sync_peer and verify_key_of(statement.sync_peer) is None:
        raise VerificationFailed("sync peer id is not self-certifying")
    return statement, cert


def _client_context(ca_file: Path | None) -> ssl.SSLContext:
    """TLS for the identity request. Trust comes from the enrolment proof, bound to the
    channel; the host name is not checked because a visiting laptop's address on the host
    town's LAN is not the one in its server certificate. With `ca_file` (the federation
    TLS root) the chain must verify as well."""
    context = (
        ssl.create_default_context(cafile=str(ca_file))
        if ca_file
        else (ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    )
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED if ca_file else ssl.CERT_NONE
    return context


class PeerVerifier:
    """Asks an advertiser who it is, over HTTPS, and checks the answer."""

    def __init__(
        self,
        root: VerifyKey,
        *,
        clock: Callable[[], datetime],
        ca_file: Path | None = None,
        timeout_s: float = 4.0,
        revoked: Callable[[VerifyKey], str | None] | None = None,
    ) -> None:
        self.root = root
        self.revoked = revoked  # edge/revocations.py: the newest signed list this box holds
        self.clock = clock
        self.timeout_s = timeout_s
        self._context = _client_context(ca_file)

    async def fetch(self, address: str, port: int, nonce: str) -> tuple[object, bytes | None]:
        """The raw answer and the DER certificate the TLS channel presented."""
        url = f"https://{address}:{port}/api/identity"
        try:
            async with (
                httpx.AsyncClient(verify=self._context, timeout=self.timeout_s) as client,
                client.stream("GET", url, params={"nonce": nonce}) as response,
            ):
                stream = response.extensions.get("network_stream")
                ssl_object = stream.get_extra_info("ssl_object") if stream else None
                der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise NotRenkei("identity answer too large")
                if response.status_code != 200:
                    raise NotRenkei(f"/api/identity answered {response.status_code}")
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            if isinstance(exc.__context__, ssl.SSLError) or "SSL" in str(exc):
                raise NotRenkei(f"no Renkei TLS at {address}:{port}: {exc}") from exc
            raise Unreachable(f"{address}:{port}: {exc!r}") from exc
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise NotRenkei(f"{address}:{port}: {exc!r}") from exc
        try:
            return json.loads(bytes(body)), der
        except ValueError as exc:
            raise NotRenkei("identity answer is not JSON") from exc

    async def verify(
        self, addresses: Sequence[str], port: int, hint: Hint = Hint()
    ) -> VerifiedPeer:
        """Try each advertised address; the first that answers decides."""
        failure: PeerError = Unreachable("no address advertised")
        for address in addresses:
            nonce = secrets.token_hex(NONCE_BYTES)
            try:
                answer, der = await self.fetch(address, port, nonce)
            except Unreachable as exc:
                failure = exc
                continue
            try:
                now = self.clock()
            except Exception as exc:  # the box's guarded clock refuses (after power loss)
                raise VerificationFailed(f"cannot check certificate dates: {exc}") from exc
            statement, cert = verify_answer(
                answer, nonce=nonce, root=self.root, now=now, tls_der=der, hint=hint
            )
            reason = self.revoked(cert.verify_key) if self.revoked else None
            if reason:
                raise VerificationFailed(f"on the federation's revocation list: {reason}")
            assert isinstance(answer, dict)
            return VerifiedPeer(
                box=cert.subject,
                town=cert.town,
                name=str(answer.get("name", ""))[:100],
                address=address,
                port=port,
                certificate=statement.certificate,
                sync_peer=statement.sync_peer,
                sync_port=statement.sync_port,
                holdings=statement.holdings,
            )
        raise failure


@dataclass(frozen=True, slots=True)
class Liveness:
    interval_s: float = 8.0
    failures: int = 2
    recheck_s: float = 30.0  # unknown / refused advertisers are asked again this often
    first_retry_s: float = 0.1  # an advertiser whose HTTPS is not up yet: retry soon

    def worst_case_s(self, timeout_s: float) -> float:
        """Longest time from a peer's last good answer to GONE."""
        return self.failures * (self.interval_s + timeout_s)


@dataclass
class Peer:
    """One advertiser, keyed by its mDNS service name."""

    service: str
    addresses: list[str]
    port: int
    hint: Hint
    state: PeerState = PeerState.DISCOVERED
    reason: str = ""
    verified: VerifiedPeer | None = None
    last_ok: float | None = None  # wall time of the last good answer
    changed: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "addresses": self.addresses,
            "port": self.port,
            "state": self.state.value,
            "reason": self.reason,
            "box": self.verified.box if self.verified else self.hint.box,
            "town": self.verified.town if self.verified else self.hint.town,
            "holdings": self.verified.holdings if self.verified else {},
            "last_ok": self.last_ok,
        }


PeerCallback = Callable[[VerifiedPeer], Awaitable[None]]
Journal = Callable[..., None]


async def _nothing(peer: VerifiedPeer) -> None:
    return None


def _ignore(event: str, **fields: object) -> None:
    return None


class PeerMonitor:
    """Keeps one supervising task per advertiser: verify, recheck, liveness."""

    def __init__(
        self,
        verifier: PeerVerifier,
        *,
        liveness: Liveness = Liveness(),
        on_verified: PeerCallback = _nothing,
        on_gone: PeerCallback = _nothing,
        on_refused: PeerCallback = _nothing,
        journal: Journal = _ignore,
        max_peers: int = 256,
    ) -> None:
        self.verifier = verifier
        self.max_peers = max_peers  # a flood of advertisements cannot exhaust the box
        self.liveness = liveness
        self.on_verified = on_verified
        self.on_gone = on_gone
        self.on_refused = on_refused  # a verified peer's proof now fails (revoked, expired)
        self.journal = journal
        self.peers: dict[str, Peer] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def seen(self, service: str, addresses: list[str], port: int, txt: Mapping[str, str]) -> None:
        """An advertisement: new, changed, or announced again after GONE."""
        hint = Hint.from_txt(txt)
        old = self.peers.get(service)
        same = old is not None and (old.addresses, old.port, old.hint) == (addresses, port, hint)
        task = self._tasks.get(service)
        if same and task is not None and not task.done():
            return
        if old is None and len(self.peers) >= self.max_peers:
            log.warning("LAN peer %r ignored: already %d advertisers", service, len(self.peers))
            return
        if old is not None and same:
            self._set(old, PeerState.DISCOVERED, "announced again")
        else:
            self.peers[service] = Peer(service, addresses, port, hint)
            self.journal(
                "discovered",
                service=service,
                addresses=addresses,
                port=port,
                box=hint.box,
                town=hint.town,
            )
            if old is not None and old.state is PeerState.VERIFIED and old.verified:
                self._spawn_gone(old.verified)
        self._restart(service)

    def goodbye(self, service: str) -> None:
        """The advertiser withdrew its service (an mDNS goodbye)."""
        task = self._tasks.pop(service, None)
        if task is not None:
            task.cancel()
        peer = self.peers.get(service)
        if peer is not None and peer.state is not PeerState.GONE:
            was_verified = peer.verified if peer.state is PeerState.VERIFIED else None
            self._set(peer, PeerState.GONE, "goodbye")
            if was_verified:
                self._spawn_gone(was_verified)

    def verified(self) -> list[VerifiedPeer]:
        return [
            p.verified for p in self.peers.values() if p.state is PeerState.VERIFIED and p.verified
        ]

    def snapshot(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in sorted(self.peers.values(), key=lambda p: p.service)]

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ internals

    def _restart(self, service: str) -> None:
        task = self._tasks.get(service)
        if task is not None and not task.done():
            task.cancel()
        self._tasks[service] = asyncio.get_running_loop().create_task(self._watch(service))

    def _spawn_gone(self, verified: VerifiedPeer) -> None:
        asyncio.get_running_loop().create_task(self._call(self.on_gone, verified))

    async def _call(self, callback: PeerCallback, verified: VerifiedPeer) -> None:
        try:
            await callback(verified)
        except Exception:
            log.exception("peer callback failed for %s", verified.box)

    def _set(self, peer: Peer, state: PeerState, reason: str = "") -> None:
        if (peer.state, peer.reason) == (state, reason):
            return
        peer.state, peer.reason, peer.changed = state, reason, time.time()
        extra: dict[str, object] = {}
        if peer.verified and state is PeerState.VERIFIED:
            extra = {
                "box": peer.verified.box,
                "town": peer.verified.town,
                "address": peer.verified.address,
                "holdings": peer.verified.holdings,
            }
        self.journal(state.value, service=peer.service, reason=reason, **extra)
        level = logging.WARNING if state is PeerState.REFUSED else logging.INFO
        log.log(level, "LAN peer %r: %s %s", peer.service, state.value, reason)

    async def _watch(self, service: str) -> None:
        peer = self.peers[service]
        failures = 0
        retry = self.liveness.first_retry_s
        while True:
            try:
                verified = await self.verifier.verify(peer.addresses, peer.port, peer.hint)
            except Unreachable as exc:
                if peer.state is PeerState.VERIFIED:
                    failures += 1
                    if failures >= self.liveness.failures:
                        gone = peer.verified
                        self._set(peer, PeerState.GONE, f"no answer ({exc})")
                        if gone:
                            await self._call(self.on_gone, gone)
                        return
                    await asyncio.sleep(self.liveness.interval_s)
                else:
                    peer.reason = f"no answer yet ({exc})"
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, self.liveness.recheck_s)
                continue
            except PeerError as exc:
                demoted = peer.verified if peer.state is PeerState.VERIFIED else None
                refused = isinstance(exc, VerificationFailed)
                self._set(peer, PeerState.REFUSED if refused else PeerState.UNKNOWN, str(exc))
                peer.verified = None
                if demoted:
                    await self._call(self.on_gone, demoted)
                    if refused:
                        await self._call(self.on_refused, demoted)
                await asyncio.sleep(self.liveness.recheck_s)
                continue
            failures = 0
            peer.last_ok = time.time()
            news = peer.state is not PeerState.VERIFIED or peer.verified != verified
            peer.verified = verified
            if news:  # newly verified, or its holdings or sync port changed
                self._set(peer, PeerState.VERIFIED, "")
                await self._call(self.on_verified, verified)
            await asyncio.sleep(self.liveness.interval_s)


def offer_to_agent(agent: SyncAgent) -> PeerCallback:
    """The composition root's wiring: a VERIFIED peer's sync id is admitted (enrolment
    proven by the federation certificate) and its sync port becomes one of the agent's
    peers; the agent's have-vectors then move whichever replica is fresher."""
    from cloud.sync_api import enrol_peer
    from edge.sync_agent import PeerStatus

    async def offer(peer: VerifiedPeer) -> None:
        if not peer.sync_peer or not peer.sync_url:
            log.info("verified peer %s serves no sync port; not offered for sync", peer.box)
            return
        await asyncio.to_thread(enrol_peer, agent.storage, peer.sync_peer)
        if peer.sync_url not in agent.peers:
            # a new dict, not an insertion: the agent's threads may be iterating the old one
            agent.peers = {**agent.peers, peer.sync_url: PeerStatus(peer.sync_url)}
        log.info("LAN sync offered to %s (%s) at %s", peer.box, peer.town, peer.sync_url)
        agent.notify_local_change()

    return offer


def withdraw_from_agent(agent: SyncAgent) -> PeerCallback:
    """The reverse of `offer_to_agent` for a peer whose proof fails at a recheck (its key
    revoked, its certificate expired): its sync id is no longer admitted at this box's
    sync port and the agent stops syncing with it. A peer that is merely unreachable
    keeps its admission."""
    from cloud.sync_api import peer_key

    async def withdraw(peer: VerifiedPeer) -> None:
        if peer.sync_peer:
            await asyncio.to_thread(agent.storage.remove, peer_key(peer.sync_peer))
        if peer.sync_url in agent.peers:
            agent.peers = {u: s for u, s in agent.peers.items() if u != peer.sync_url}
        log.warning("LAN sync withdrawn from %s (%s): its proof fails", peer.box, peer.town)

    return withdraw
