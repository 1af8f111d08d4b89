"""The box's web application: the composition root of the box process.

The lifespan opens the box's sealed replica store and login throttle, fetches the towns'
keys and clerks' credentials from the hub (and keeps doing so in the background), and
starts the sync agent — the towns' documents reach the box only through its sync log;
the first sync with the hub completes before the box answers, when the hub is there.
The box works from its local replica when the hub is unreachable. No town is open at
start: a town opens in memory, from the sync log, when one of its clerks logs in with
their usual ID and password, and every town is sealed again on restart. Each town's
as-of time comes from the hub's signed statement, with a warning when it shows the box
is starved of newer data.

    GET  /login            login form (Japanese)
    POST /login            log in; opens the town if it is not open yet
    POST /logout           end the session
    GET  /                 search page of the session's town; ?q= runs a search
    GET  /api/search?q=    {"town", "as_of", "results": [...]}
    POST /clock/confirm    a supervisor confirms the date after a power loss
    GET  /resident/{id}, POST /issue, GET /printed/{n}.pdf, GET /districts, POST /list
                           the counter (edge.counter_routes; docs/counter.md)
    GET/POST /verify       check a certificate's QR payload offline (no login)
    GET  /api/health       {"status": "ok", "town": code, "open": [codes], "mode": "normal"|"drill"}
    GET  /api/alerts, /alerts   alerts (edge/alerts.py), no login
    /supervisor/…          supervisor screens (edge/supervisor.py)
    /emergency/…           emergency checklists and the end of an emergency (edge/procedure.py)
    GET  /visiting         the visiting desk (edge/visiting.py)

Time (BRIEF §3): the box keeps a floor from the newest signed time it has seen (a clerk
certificate's issue time, signed by the town) and refuses logins while its clock is
behind it; after a power loss (a new boot id) a supervisor confirms the date first.

    GET  /activation       a host supervisor's emergency-activation screen
    POST /activation       accept (or, with action=revoke / ratify, revoke / ratify) a code
    GET/POST /activation/break-glass   break-glass (edge/emergency.py)

A partner town opens here only under an emergency activation (覚書 §2) signed by one of
its deputies, naming this box and the visiting clerk, accepted by a host supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jinja2 import Environment, PackageLoader, select_autoescape
from nacl.signing import VerifyKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from edge import auth, box_mode, visiting
from edge.activation_feed import ActivationFeed
from edge.alerts import box_alert_routes
from edge.anchoring import AnchorReporter
from edge.boxkey import box_audit_writer, box_signing_key
from edge.clerks import ClerkOutbox
from edge.counter_routes import counter_routes
from edge.counter_routes import status as counter_status
from edge.discovery import DiscoveryError, LanDiscovery
from edge.emergency import (
    ExpiryWatch,
    banner,
    break_glass_routes,
    seal_expired,
    session_allowed,
    status_label,
)
from edge.peer_anchors import PeerAnchorExchange, peer_anchor_routes
from edge.procedure import EmergencyScreens, push_exports
from edge.replica import BoxReplica, ReplicaError
from edge.revocations import RevocationFetcher, RevocationStore
from edge.supervisor import SupervisorScreens
from edge.sync_agent import AgentConfig, SyncAgent
from edge.town import ResultRow
from edge.workers import WorkerGone, WorkerPool
from printing.verification import verify_for_page
from shared.activation import ActivationError, ActivationRegistry, TownTrust, jst
from shared.audit import AuditError, AuditKind, TownAuditRecorder
from shared.clock import ClockBehindFloor, ClockError, TrustedClock
from shared.model import Role
from shared.registry import DEFAULT_SHARDS
from shared.storage import SqliteStorage
from shared.wareki import to_wareki

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 100
MSG_ACTIVATION_NEEDED = (
    "この連携ボックスで他の町村のデータを開くには、その町村の代表者による緊急時の"
    "利用開始（アクティベーション）が必要です。監督者に相談してください。"
)

MSG_NO_PENDING = "その利用開始はもう受付待ちではありません。一覧を確認してください。"
MSG_RATIFIED = "緊急起動の追認を受け付けました（承認済）。"
MSG_REVOKED_SEALED = "取消を受け付け、その町村を閉じました。"
MSG_REVOKED_STILL_OPEN = (
    "取消を受け付け、取り消された職員のログインを終了しました。"
    "ほかの有効な緊急時利用開始があるため、その町村は開いたままです。"
)
MSG_REVOKED_AHEAD = (
    "取消を受け付けました。取り消された緊急時利用開始はまだこのボックスに届いていません"
    "（届いても使えません）。"
)

_templates = Environment(loader=PackageLoader("edge", "templates"), autoescape=select_autoescape())


@dataclass(frozen=True, slots=True)
class BoxConfig:
    hub_url: str
    town_code: str
    data_dir: Path
    shards: int = DEFAULT_SHARDS
    pull_interval_s: float = 30.0
    box_id: str = ""  # defaults to box-<town>
    discovery_interfaces: tuple[str, ...] = ()  # LAN discovery off unless set (or discovery.json)
    drill: bool = False  # 訓練モード: 見本 copies in the D series (edge/box_mode.py)

    @property
    def host_box(self) -> str:
        return self.box_id or f"box-{self.town_code}"


class Box:
    """The box's state: its sealed replica, sessions, and the towns open in memory."""

    def __init__(self, config: BoxConfig) -> None:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.storage = SqliteStorage(config.data_dir / "replica.db")
        self.replica = BoxReplica(self.storage)
        self.throttle = auth.LoginThrottle(config.data_dir / "logins.db")
        self.sessions = auth.SessionStore()
        self.clock = TrustedClock(config.data_dir / "clock.json")
        self.workers = WorkerPool(config.data_dir, config.shards)
        # session id -> the capability the town's worker issued for it; pending holds a
        # capability between the worker's yes and the session's creation.
        self.capabilities: dict[str, str] = {}
        self._pending: dict[tuple[str, str], str] = {}
        self.hub_reachable = False
        self._pull_wake: asyncio.Event | None = None  # set by pull_soon, awaited in pull_forever
        self.audit = TownAuditRecorder(
            self.storage,
            box_audit_writer(config.data_dir, config.host_box),
            self.replica.town_public,
            self.clock.now,
        )
        self.activations = ActivationRegistry(
            self.storage,
            host_town=config.town_code,
            host_box=config.host_box,
            clock=self.clock,
            trust=self._trust,
            audit=self.audit,
        )

    def record(self, town: str, kind: AuditKind, **details: object) -> None:
        """An audit entry sealed to the town; needs only the town's public key, so a
        sealed town's failed logins are recorded too."""
        try:
            self.audit.record(town, kind, details)
        except AuditError as exc:  # a town this box does not hold
            log.warning("audit entry for %s not written: %s", town, exc)

    def _trust(self, town: str) -> TownTrust | None:
        public = self.replica.town_public(town)
        if public is None:
            return None
        return TownTrust.of(public, self.replica.certificates(town))

    def may_open(self, town: str, login_id: str) -> bool:
        """Its own town opens for its clerks; a partner town only under an activation
        (覚書 §2) naming this box and this clerk, unexpired and not revoked."""
        if town == self.config.town_code:
            return True
        return self.activations.is_open_allowed(town, login_id)

    async def seal(self, town: str) -> None:
        """End a partner town's emergency on this box: sessions end, its worker stops."""
        self.sessions.revoke_town(town)
        await self.workers.stop_town(town)

    def pull_once(self) -> None:
        try:
            with httpx.Client(base_url=self.config.hub_url, timeout=30) as client:
                ClerkOutbox(self.storage).push(client, self.replica.towns())
                push_exports(self.storage, client, self.replica.towns())
                self.replica.pull(client, box_town=self.config.town_code)
            self.hub_reachable = True
        except (httpx.HTTPError, ReplicaError) as exc:
            self.hub_reachable = False
            log.warning("pull from the hub failed: %s", exc)

    def pull_soon(self) -> None:
        """Pull now rather than at the next interval: something waits to go to the hub
        (a sealed export), and the hub's operator should not wait half a minute for it."""
        if self._pull_wake is not None:
            self._pull_wake.set()

    async def pull_forever(self) -> None:
        # While the hub cannot be reached (a box started before it, a cut line), ask
        # again soon — 1 s, doubling up to the usual interval — not a whole interval on.
        retry = 1.0
        self._pull_wake = wake = asyncio.Event()
        while True:
            delay = self.config.pull_interval_s if self.hub_reachable else retry
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(delay, self.config.pull_interval_s))
            wake.clear()
            await asyncio.to_thread(self.pull_once)
            retry = 1.0 if self.hub_reachable else min(retry * 2, self.config.pull_interval_s)

    async def check_credentials(
        self, town: str, login_id: str, password: str
    ) -> auth.Identity | None:
        """The password goes to the town's worker, which alone unwraps keys."""
        await self.workers.ensure(town)
        answer = await self.workers.request(
            town, {"op": "unlock", "login_id": login_id, "password": password}
        )
        if not answer.get("ok"):
            return None
        # The town signed this certificate: the box's clock may never again be behind it.
        self.clock.observe_signed_time(float(answer["issued_at"]))
        self._pending[(town, login_id)] = str(answer["capability"])
        return auth.Identity(
            str(answer["display_name"]), frozenset(Role(r) for r in answer["roles"])
        )

    def bind(self, principal: auth.Principal) -> None:
        key = (principal.town_code, principal.login_id)
        self.capabilities[principal.session_id] = self._pending.pop(key)

    async def ask(self, principal: auth.Principal, message: dict[str, Any]) -> dict[str, Any]:
        """A request to the session's town worker, with the session's capability; a dead
        worker means the town was sealed: its sessions end."""
        capability = self.capabilities.get(principal.session_id, "")
        if not session_allowed(self, principal):  # a visitor's activation ended
            self.sessions.revoke(principal.session_id)
            raise WorkerGone(principal.town_code)
        try:
            return await self.workers.request(
                principal.town_code, {**message, "capability": capability}
            )
        except WorkerGone:
            self.sessions.revoke_town(principal.town_code)
            raise

    async def close(self) -> None:
        await self.workers.stop()
        self.throttle.close()
        self.storage.close()


def create_app(config: BoxConfig) -> Starlette:
    box = Box(config)
    box_mode.write(config.data_dir, drill=config.drill)
    lan = LanDiscovery.for_box(box)
    watch = ExpiryWatch(box)
    feed = ActivationFeed(box)
    anchors = AnchorReporter(
        box.storage, lambda: box.replica.towns() or [config.town_code], config.host_box,
        box_signing_key(config.data_dir), config.hub_url,
    )  # fmt: skip
    peer_anchors = PeerAnchorExchange(
        box.storage, lambda: box.replica.towns() or [config.town_code], config.host_box,
        box_signing_key(config.data_dir), lambda: lan.identity.certificate,
        lambda: lan.monitor.verified() if lan.monitor else [], ca_file=lan.settings.ca_file,
    )  # fmt: skip

    def pinned_root() -> VerifyKey | None:
        try:
            return lan.settings.root_key()
        except DiscoveryError:
            return None

    revocations = RevocationStore(config.data_dir, pinned_root)
    lan.revoked = revocations.reason
    revocation_fetcher = RevocationFetcher(
        revocations, config.hub_url, lambda: lan.monitor.verified() if lan.monitor else [],
        interval_s=lan.settings.revocation_interval_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(box.pull_once)
        puller = asyncio.create_task(box.pull_forever())
        sync = AgentConfig.for_box(config.data_dir, config.hub_url, config.town_code)
        agent = SyncAgent(box.storage, sync)
        if box.hub_reachable and sync.hub_url:
            # Open with the hub's data when the hub is there (a failure is only logged:
            # the agent keeps trying, and the box serves what it holds).
            await asyncio.to_thread(agent.attempt, sync.hub_url)
        await agent.start()
        await lan.start(agent)
        await watch.start()
        await feed.start()
        await anchors.start()
        await peer_anchors.start()
        await revocation_fetcher.start()
        try:
            yield
        finally:
            await revocation_fetcher.stop()
            await peer_anchors.stop()
            await anchors.stop()
            await feed.stop()
            await watch.stop()
            await lan.stop()
            await agent.stop()
            puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await puller
            await box.close()

    def render(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
        emergency = banner(box, context.get("principal"))  # type: ignore[arg-type]
        html = _templates.get_template(name).render(box=box, emergency=emergency, **context)
        return HTMLResponse(html, status_code=status_code)

    def login_form(request: Request, error: str = "", status_code: int = 200) -> Response:
        token = auth.new_login_token()
        response = render(
            "login.html",
            status_code=status_code,
            towns=box.replica.towns() or [config.town_code],
            own_town=request.query_params.get("town") or config.town_code,
            csrf_token=token,
            error=error,
            next=auth.safe_next(request.query_params.get("next")),
        )
        auth.set_login_token_cookie(response, token)
        return response

    async def login_page(request: Request) -> Response:
        return login_form(request)

    async def login_submit(request: Request) -> Response:
        form = await request.form()
        if not auth.login_token_ok(request, form.get(auth.CSRF_FIELD)):
            return login_form(request, auth.MSG_CSRF, 403)
        town = str(form.get("town", config.town_code))
        login_id = str(form.get("login_id", "")).strip()
        password = str(form.get("password", ""))
        if not box.may_open(town, login_id):
            log.warning("partner town %s refused without activation (login %r)", town, login_id)
            box.record(
                town,
                AuditKind.LOGIN_FAILED,
                login_id=login_id,
                client=auth.client_address(request),
                reason="no_activation",
            )
            return login_form(request, MSG_ACTIVATION_NEEDED, 403)
        try:
            box.clock.now()
        except ClockBehindFloor as exc:
            log.error("clock behind the floor of signed time: %s", exc)
            return login_form(request, str(exc), 503)
        try:
            principal = await auth.log_in(
                sessions=box.sessions,
                throttle=box.throttle,
                check=box.check_credentials,
                town_code=town,
                login_id=login_id,
                password=password,
                client=auth.client_address(request),
                visiting=town != config.town_code,
            )
        except auth.AuthError as exc:
            box.record(
                town,
                AuditKind.LOGIN_FAILED,
                login_id=login_id,
                client=auth.client_address(request),
                reason=type(exc).__name__,
            )
            return login_form(request, str(exc), 401)
        box.bind(principal)
        box.record(
            town,
            AuditKind.LOGIN_OK,
            login_id=login_id,
            client=auth.client_address(request),
            visiting=principal.visiting,
        )
        response = RedirectResponse(auth.safe_next(form.get("next")), status_code=303)
        auth.set_session_cookie(response, principal)
        return response

    @auth.require()
    async def logout(request: Request) -> Response:
        principal = auth.current_principal(request)
        if principal is not None:
            with contextlib.suppress(WorkerGone):
                await box.ask(principal, {"op": "close"})
            box.capabilities.pop(principal.session_id, None)
        response = RedirectResponse("/login", status_code=303)
        auth.log_out(request, response)
        return response

    def _query(request: Request) -> str:
        # Control characters (a NUL from %00) are never part of a name or address, and
        # SQLite's FTS5 refuses a NUL inside a phrase: drop them here, at the boundary.
        text = request.query_params.get("q", "")
        return "".join(c for c in text if c.isprintable() or c == " ").strip()[:MAX_QUERY_CHARS]

    async def _search(request: Request, query: str) -> dict[str, Any] | None:
        """The worker's answer (the town's name and as-of time alone for an empty query),
        or None when the town was sealed again (worker gone or the capability no longer
        valid): the session is over."""
        principal = auth.current_principal(request)
        assert principal is not None
        message = {"op": "search", "query": query} if query else {"op": "info"}
        try:
            answer = await box.ask(principal, message)
        except WorkerGone:
            return None
        if not answer.get("ok") and not answer.get("query_error"):
            return None
        return answer

    def _sealed_again(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        auth.log_out(request, response)
        return response

    @auth.require()
    async def search_page(request: Request) -> Response:
        principal = auth.current_principal(request)
        if box.clock.needs_date_confirmation:
            return render(
                "confirm_date.html",
                principal=principal,
                today=to_wareki(box.clock.today()),
                may_confirm=_is_supervisor(request),
            )
        query = _query(request)
        answer = await _search(request, query)
        if answer is None:
            return _sealed_again(request)
        error = "" if answer.get("ok") else str(answer.get("error", ""))
        results = [ResultRow(**row) for row in answer.get("rows", [])]
        town = {
            "name": answer.get("name", ""),
            "as_of_label": answer.get("as_of_label", ""),
            "as_of_warning": answer.get("as_of_warning", ""),
        }
        return render(
            "search.html",
            status_code=400 if error else 200,
            town=town,
            principal=principal,
            query=query,
            results=results,
            error=error,
            searched=bool(query) and not error,
            partner=principal and visiting.partner_named(box, principal.town_code, query),
            status=principal and counter_status(box, principal.town_code),
        )

    @auth.require()
    async def search_api(request: Request) -> JSONResponse:
        query = _query(request)
        if not query:
            return JSONResponse({"error": "検索語を入力してください。"}, status_code=400)
        answer = await _search(request, query)
        if answer is None:
            return JSONResponse({"error": auth.MSG_LOGIN_REQUIRED}, status_code=401)
        if not answer.get("ok"):
            return JSONResponse({"error": answer.get("error", "")}, status_code=400)
        return JSONResponse(
            {"town": answer["town"], "as_of": answer["as_of"], "results": answer["rows"]}
        )

    def _is_supervisor(request: Request) -> bool:
        principal = auth.current_principal(request)
        return principal is not None and Role.SUPERVISOR in principal.roles

    @auth.require({Role.SUPERVISOR})
    async def confirm_date(request: Request) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        try:
            box.clock.confirm_date(principal.login_id, box.clock.today())
        except ClockError as exc:
            return render(
                "confirm_date.html",
                status_code=409,
                principal=principal,
                today=to_wareki(box.clock.today()),
                may_confirm=True,
                error=str(exc),
            )
        log.info("date confirmed after power loss by %r", principal.login_id)
        box.record(
            config.town_code,
            AuditKind.DATE_CONFIRMED,
            login_id=principal.login_id,
            date=box.clock.today().isoformat(),
        )
        return RedirectResponse("/", status_code=303)

    def _activation_page(
        request: Request, message: str = "", error: str = "", status_code: int = 200
    ) -> Response:
        return render(
            "activation.html",
            status_code=status_code,
            principal=auth.current_principal(request),
            activations=box.activations.activations(),
            jst=jst,
            status_label=status_label,
            pending=feed.pending(),
            now=box.activations.effective_now(),
            message=message,
            error=error,
        )

    @auth.require({Role.SUPERVISOR})
    async def activation_page(request: Request) -> Response:
        return _activation_page(request)

    @auth.require({Role.SUPERVISOR})
    async def activation_submit(request: Request) -> Response:
        """A host supervisor enters a stricken town's activation or revocation code."""
        principal = auth.current_principal(request)
        assert principal is not None
        form = await request.form()
        code = str(form.get("code", "")).strip()
        try:
            if form.get("action") == "revoke":
                # The same rule as an online revocation (edge/activation_feed.py): the
                # revoked clerks' sessions end at once; the town is sealed only when no
                # other valid activation still holds it open.
                revocation = box.activations.revoke(code)
                target = next(
                    (a for a in box.activations.activations() if a.id == revocation.target), None
                )
                sealed = await seal_expired(box)
                if target is None:
                    return _activation_page(request, message=MSG_REVOKED_AHEAD)
                if target.stricken_town in sealed:
                    return _activation_page(request, message=MSG_REVOKED_SEALED)
                return _activation_page(request, message=MSG_REVOKED_STILL_OPEN)
            if form.get("action") == "accept_online":
                accepted = feed.take(str(form.get("record", "")), principal.login_id)
            elif form.get("action") == "ratify":
                box.activations.ratify(code)
                return _activation_page(request, message=MSG_RATIFIED)
            else:
                accepted = box.activations.accept(code, host_supervisor=principal.login_id)
        except LookupError:
            return _activation_page(request, error=MSG_NO_PENDING, status_code=404)
        except ActivationError as exc:
            return _activation_page(request, error=str(exc), status_code=400)
        town_name = box.replica.town_name(accepted.stricken_town)
        clerks = "、".join(accepted.clerks)
        return _activation_page(
            request,
            message=f"{town_name}の緊急時利用開始を受け付けました（職員: {clerks}、"
            f"期限: {jst(accepted.expires_at)}）。",
        )

    async def verify_page(request: Request) -> Response:
        """Anyone may check a certificate's QR here; no login, nothing personal stored."""
        payload, verdict = "", None
        if request.method == "POST":
            payload = str((await request.form()).get("payload", ""))
            verdict = verify_for_page(payload, box.replica.town_public)
        return render("verify.html", payload=payload, verdict=verdict)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "town": config.town_code,
                "open": await box.workers.open_towns(),
                "mode": "drill" if config.drill else "normal",
            }
        )

    return Starlette(
        routes=[
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login_submit, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/", search_page),
            Route("/clock/confirm", confirm_date, methods=["POST"]),
            Route("/activation", activation_page, methods=["GET"]),
            Route("/activation", activation_submit, methods=["POST"]),
            Route("/api/search", search_api),
            *counter_routes(box, render, _sealed_again),
            Route("/verify", verify_page, methods=["GET", "POST"]),
            Route("/api/health", health),
            *SupervisorScreens(box, render).routes(),
            *EmergencyScreens(box, render).routes(),
            *visiting.routes(box, render),
            *lan.routes,
            *peer_anchor_routes(box.storage, config.host_box, pinned_root, revocations.reason),
            *revocations.routes(),
            *break_glass_routes(box, render),
            *box_alert_routes(box),
        ],
        middleware=[Middleware(auth.SessionMiddleware, sessions=box.sessions)],
        lifespan=lifespan,
    )
