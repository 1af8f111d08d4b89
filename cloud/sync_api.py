"""The sync endpoints over HTTP: the responder side of `shared.sync.protocol`.

    POST /api/sync/{town}/hello      body: a hello message → welcome (a fresh nonce)
    POST /api/sync/{town}/exchange   body: a signed exchange (have-vector + blobs)
                                     → reply (next nonce, have, what the caller lacks)

Bodies are sync messages (`application/x-renkei-sync`, docs/sync-protocol.md); a reply's
blobs are streamed one frame at a time from the store. A refusal comes back as a refusal
message with a 4xx status: 409 stale nonce (start again with a hello), 403 peer not
enrolled or signature wrong, 400 malformed or wrong town, 413 too large, 426 protocol.

The same routes serve on the hub (its data folder's store) and on a box for box↔box sync
(`edge.sync_agent` mounts them on its peer port). Peers must be enrolled: at the hub, by a
box certificate chaining to the federation root (`cloud.enrolment`, `renkei enroll`);
on a box (and a hub with no root pinned) a peer id is admitted when the store holds
("sync", "peer", id) — written when discovery verified the peer's certificate.

The hub also serves its sync state as JSON (`hub_routes`, documented in
docs/sync-protocol.md §10–11):

    GET  /api/replicas                       the replica-health view
    GET  /api/review?town=&status=           concurrent edits listed for review
    POST /api/review/{town}/{item}           mark an item resolved ({"by", "note"})

Failpoints (tests and drills only): with RENKEI_SYNC_FAILPOINT=point[@n] in the
environment (or =file:PATH, PATH holding such a spec, read at each check, so a drill can
arm it while the hub runs), the process kills itself with SIGKILL the n-th time (default
first) it reaches `point`: hello.before-reply, exchange.before-store, exchange.mid-store (half of
the request's blobs stored), exchange.after-store (before the reply), exchange.mid-reply
(after the first blob frame of the reply).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shared.storage import Storage, StorageKey
from shared.sync.errors import WireError
from shared.sync.identity import verify_key_of
from shared.sync.log import BlobLog
from shared.sync.messages import (
    Exchange,
    Hello,
    Message,
    Refusal,
    Reply,
    decode,
    encode,
    frames,
)
from shared.sync.protocol import Limits, NonceBook, Observer, Placement, Responder

if TYPE_CHECKING:
    from cloud.replica import HubReplica

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/x-renkei-sync"
_STATUS = {"nonce": 409, "auth": 403, "request": 400, "protocol": 426, "busy": 503}


def peer_key(peer_id: str) -> StorageKey:
    return ("sync", "peer", peer_id)


def enrol_peer(storage: Storage, peer_id: str, *, name: str = "", town: str = "") -> None:
    """Admit a peer's sync identity (what box enrolment records), with the box's name and
    town for the hub's replica-health view when known."""
    if verify_key_of(peer_id) is None:
        raise ValueError("not a self-certifying peer id")
    record = json.dumps({"name": name, "town": town}, ensure_ascii=False).encode()
    storage.save(peer_key(peer_id), record if name or town else b"1")


def enrolled_peers(storage: Storage) -> Callable[[str], bool]:
    return lambda peer_id: storage.load(peer_key(peer_id)) is not None


SCOPES_KEY: StorageKey = ("federation", "scopes")


def separate_towns(storage: Storage) -> dict[str, str]:
    """Towns whose partners hold a separate copy ({town: its partner scope}); written
    by the hub's import, and on a box from the federation's description."""
    raw = storage.load(SCOPES_KEY)
    return {} if raw is None else dict(json.loads(raw))


def peer_town(storage: Storage, peer_id: str) -> str:
    raw = storage.load(peer_key(peer_id))
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    return str(data.get("town", "")) if isinstance(data, dict) else ""


PeerDirectory = Callable[[str], tuple[str, str] | None]  # peer id → (box name, its town)


def placement(storage: Storage, directory: PeerDirectory | None = None) -> Placement:
    """A town with a separate partner copy is synced in full only with its own town's
    boxes (as enrolled: the hub's enrolment register, else the stored peer record);
    every other town, and every partner copy, with any peer."""

    def allowed(peer: str, town: str) -> bool:
        if town not in separate_towns(storage):
            return True
        known = directory(peer) if directory is not None else None
        return (known[1] if known else peer_town(storage, peer)) == town

    return allowed


def enrolment_directory(enrolment: Any) -> PeerDirectory:
    """The hub's enrolment register as a peer directory (box name and town)."""

    def describe(peer: str) -> tuple[str, str] | None:
        row = enrolment.registry.box_by_peer(peer)
        return None if row is None else (str(row.box), str(row.town))

    return describe


# ---------------------------------------------------------------------------- failpoints


_hits: dict[str, int] = {}


def _failpoint_spec() -> str:
    spec = os.environ.get("RENKEI_SYNC_FAILPOINT", "")
    if spec.startswith("file:"):  # armed and disarmed at run time by a drill or test
        try:
            return Path(spec[5:]).read_text().strip()
        except OSError:
            return ""
    return spec


def failpoint(name: str) -> None:
    spec = _failpoint_spec()
    if not spec:
        return
    point, _, count = spec.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or 1):
        log.warning("failpoint %s reached: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)


def armed(name: str) -> bool:
    return _failpoint_spec().partition("@")[0] == name


# ---------------------------------------------------------------------------- service


@dataclass
class SyncService:
    """A replica's responder and the lock that serialises access to its blob log (the
    routes run in a thread pool; a box's agent shares the lock for its own sessions)."""

    log: BlobLog
    peer_id: str
    limits: Limits = field(default_factory=Limits)
    authorize: Callable[[str], bool] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    observe: Observer | None = None  # told of every authorised exchange (the hub's view)
    placement: Placement | None = None  # which peer may sync which town here
    responder: Responder = field(init=False)

    def __post_init__(self) -> None:
        self.responder = Responder(
            self.log,
            self.peer_id,
            limits=self.limits,
            nonces=NonceBook(),
            authorize=self.authorize or enrolled_peers(self.log.storage),
            observe=self.observe,
            placement=self.placement or placement(self.log.storage),
        )

    def handle(self, message: Message) -> Message:
        with self.lock:
            self.log.refresh()
            if isinstance(message, Exchange):
                failpoint("exchange.before-store")
                if len(message.blobs) >= 2 and armed("exchange.mid-store"):
                    self.log.add_many(message.blobs[: len(message.blobs) // 2])
                    failpoint("exchange.mid-store")
            answer = self.responder.handle(message, time.monotonic())
            if isinstance(answer, Reply):
                failpoint("exchange.after-store")
            return answer


def _streamed(reply: Reply) -> Iterator[bytes]:
    for index, chunk in enumerate(frames(reply)):
        yield chunk
        if index == 1:
            failpoint("exchange.mid-reply")


def sync_routes(
    service_of: Callable[[Request], SyncService],
) -> list[Route]:
    """The two sync routes; `service_of` finds the replica's service for a request (the
    hub keeps it in `app.state`, see `hub_service`)."""

    async def read(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > limit:
            raise _TooLarge()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _TooLarge()
        return bytes(body)

    def refusal(session: str, code: str, text: str, status: int | None = None) -> Response:
        message = Refusal(session, code, text)
        return Response(encode(message), status or _STATUS.get(code, 400), media_type=MEDIA_TYPE)

    async def endpoint(request: Request, kind: str) -> Response:
        service = service_of(request)
        town = request.path_params["town"]
        try:
            message = decode(await read(request, service.limits.max_message_bytes))
        except _TooLarge:
            return refusal("", "request", "message too large", 413)
        except WireError as exc:
            return refusal("", "request", str(exc))
        expected = Hello if kind == "hello" else Exchange
        if not isinstance(message, expected):
            return refusal(message.session, "request", f"expected a {kind} message")
        if tuple(message.towns) != (town,) or (isinstance(message, Hello) and message.any_town):
            return refusal(message.session, "request", f"this endpoint syncs town {town} only")
        answer = await run_in_threadpool(service.handle, message)
        if isinstance(answer, Refusal):
            return Response(encode(answer), _STATUS.get(answer.code, 400), media_type=MEDIA_TYPE)
        if isinstance(answer, Reply):
            return StreamingResponse(_streamed(answer), media_type=MEDIA_TYPE)
        failpoint("hello.before-reply")
        return Response(encode(answer), media_type=MEDIA_TYPE)

    async def hello(request: Request) -> Response:
        return await endpoint(request, "hello")

    async def exchange(request: Request) -> Response:
        return await endpoint(request, "exchange")

    return [
        Route("/api/sync/{town:str}/hello", hello, methods=["POST"]),
        Route("/api/sync/{town:str}/exchange", exchange, methods=["POST"]),
    ]


class _TooLarge(Exception):
    pass


def hub_service(request: Request) -> SyncService:
    """The hub's sync service (built in the hub's lifespan over its `HubReplica`)."""
    service: SyncService = request.app.state.sync_service
    return service


def hub_sync_service(hub: HubReplica, enrolment: Any = None) -> SyncService:
    """The hub's responder over its replica's log. Peers are admitted by an enrolled
    certificate (`cloud.enrolment`) once the hub has a federation root pinned; by stored
    ids only on a hub without one."""
    legacy = enrolled_peers(hub.storage)
    authorize = enrolment.admission(legacy) if enrolment is not None else legacy
    directory = enrolment_directory(enrolment) if enrolment is not None else None
    hub.directory = directory
    return SyncService(
        hub.log, hub.peer_id, authorize=authorize, observe=hub.observe,
        placement=placement(hub.storage, directory),
    )  # fmt: skip


def hub_routes(
    hub_of: Callable[[Request], HubReplica], operator_of: Callable[[Request], str | None]
) -> list[Route]:
    """The hub's sync state as JSON: replica health and the review list. The review list
    shows residents' field values, so it answers only a logged-in operator
    (`operator_of` gives the operator's login from the session cookie, or None)."""

    def refused(request: Request) -> JSONResponse | None:
        if operator_of(request) is None:
            return JSONResponse({"error": "ハブの運用者としてログインしてください。"}, 401)
        return None

    async def replicas(request: Request) -> JSONResponse:
        hub = hub_of(request)
        return JSONResponse(await run_in_threadpool(locked, request, hub.health))

    async def review(request: Request) -> JSONResponse:
        if (refusal := refused(request)) is not None:
            return refusal
        hub = hub_of(request)
        town = request.query_params.get("town") or None
        status = request.query_params.get("status") or None
        items = hub.review_items(town, status)
        return JSONResponse({"items": items, "open": sum(i["status"] == "open" for i in items)})

    async def resolve(request: Request) -> JSONResponse:
        if (refusal := refused(request)) is not None:
            return refusal
        # JSON only: a cross-site form cannot send it without a CORS preflight
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "JSON で送ってください。"}, 415)
        hub = hub_of(request)
        try:
            body = await request.json()
        except ValueError:
            body = {}
        by = str(operator_of(request))
        note = str(body.get("note", "")) if isinstance(body, dict) else ""
        try:
            item = hub.resolve(request.path_params["town"], request.path_params["item"], by, note)
        except KeyError:
            return JSONResponse({"error": "指定された確認事項はありません。"}, 404)
        return JSONResponse(item)

    return [
        Route("/api/replicas", replicas),
        Route("/api/review", review),
        Route("/api/review/{town:str}/{item:str}", resolve, methods=["POST"]),
    ]


def locked(request: Request, func: Callable[[], Any]) -> Any:
    """Run `func` holding the hub's sync lock (its log is shared with the sync routes)."""
    with hub_service(request).lock:
        return func()
