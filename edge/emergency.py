"""The host box's emergency desk: break-glass, ratification and the end of an emergency.

    GET  /activation/break-glass   a host supervisor (logged in) starts a break-glass for a
                                   partner town; two clerks of that town's emergency roster
                                   each type their ID and password at the same screen
    POST /activation/break-glass   sign (each key in its own town's worker, `edge.glass`),
                                   accept, audit; the visiting clerks may then open the town
                                   for at most 24 hours, shown as 未承認 until a deputy's
                                   ratification arrives (typed on /activation, or online)

The break-glass body is drafted here, sent to the host town's worker (the supervisor's
session key signs) and to the stricken town's worker (each roster clerk's password
unwraps their key there; the town stays sealed), and only the three signatures come
back. Passwords travel to the worker and nowhere else; failures count against the login
throttle like a failed login, and are audited in the stricken town's chain.

`ExpiryWatch` (started from the app's lifespan) seals a partner town whose last valid
activation expired or was revoked: its sessions end and its worker stops. `Box.ask`
additionally refuses a visiting session whose own grant ended, so nothing waits for the
next watch tick. Expiry is judged by the registry's effective time (wall clock floor and
elapsed uptime, shared/activation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge import auth
from edge.workers import WorkerGone
from shared.activation import (
    MAX_BREAK_GLASS_SECONDS,
    AcceptedActivation,
    ActivationError,
    BreakGlass,
    GlassSignature,
    jst,
)
from shared.audit import AuditKind
from shared.background import BackgroundLoop
from shared.clock import ClockError
from shared.model import Role

if TYPE_CHECKING:
    from edge.app import Box

log = logging.getLogger(__name__)

Render = Callable[..., Response]

MSG_TWO_CLERKS = (
    "緊急時名簿に載った職員2名が、それぞれ自分のログインIDとパスワードを入力してください。"
)
MSG_SAME_CLERK = "2名は別々の職員でなければなりません。"
MSG_TOWN = "緊急起動する町村を選んでください。"
MSG_HOURS = "有効時間は、時間と分で合わせて1分から24時間までの範囲で指定してください。"
MSG_WORKER = "町村の処理が応答しません。もう一度操作してください。"


def status_label(accepted: AcceptedActivation, now: float) -> str:
    """What the lists and the visiting session's banner say about an activation."""
    if accepted.revoked:
        return "取消済"
    if now >= accepted.expires_at:
        return "期限切れ" + ("（未承認）" if not accepted.ratified else "")
    if accepted.kind == "break_glass":
        return "緊急起動・承認済" if accepted.ratified else "緊急起動・未承認"
    return "有効"


def banner(box: Box, principal: auth.Principal | None) -> dict[str, Any] | None:
    """For a visiting clerk's pages: under what the town is open here and until when."""
    if principal is None or principal.town_code == box.config.town_code:
        return None
    try:
        now = box.activations.effective_now()
        grant = box.activations.grant(principal.town_code, principal.login_id, now)
    except ClockError:
        return None
    if grant is None:
        return None
    return {
        "kind": grant.kind,
        "ratified": grant.ratified,
        "label": status_label(grant, now),
        "expires": jst(grant.expires_at),
    }


def session_allowed(box: Box, principal: auth.Principal) -> bool:
    """A visiting clerk's session lasts only while their own grant does."""
    if principal.town_code == box.config.town_code:
        return True
    try:
        return box.activations.is_open_allowed(principal.town_code, principal.login_id)
    except ClockError:
        return False


async def seal_expired(box: Box) -> list[str]:
    """Seal every open partner town no valid activation names any more; end the sessions
    of visiting clerks whose own grant ended. Returns the towns sealed."""
    sealed = []
    now = box.activations.effective_now()
    for accepted in box.activations.activations():
        for login_id in accepted.clerks:
            if not box.activations.is_open_allowed(accepted.stricken_town, login_id, now):
                box.sessions.revoke_login(accepted.stricken_town, login_id)
    for town in list(box.workers.processes):
        if town == box.config.town_code or not box.workers.alive(town):
            continue
        valid = [a for a in box.activations.activations(town) if a.valid_at(now)]
        if valid:
            continue
        with contextlib.suppress(WorkerGone):
            if not (await box.workers.request(town, {"op": "ping"})).get("open"):
                continue  # a worker started only to sign a break-glass: nothing open
        await box.seal(town)
        box.record(town, AuditKind.LOCK, reason="activation_ended", host_box=box.config.host_box)
        log.info("partner town %s sealed: no valid activation left", town)
        sealed.append(town)
    return sealed


class ExpiryWatch(BackgroundLoop):
    """A supervised loop in the box's lifespan: `seal_expired` every `interval_s`."""

    def __init__(self, box: Box, interval_s: float = 2.0) -> None:
        self.box = box
        self.interval_s = interval_s

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await seal_expired(self.box)
            except Exception:  # keep watching; the next tick tries again
                log.exception("expiry watch failed")



# ---------------------------------------------------------------------------- break-glass


def break_glass_routes(box: Box, render: Render) -> list[Route]:
    own = box.config.town_code

    def partners() -> list[tuple[str, str]]:
        return [(t, box.replica.town_name(t)) for t in box.replica.towns() if t != own]

    def page(request: Request, status_code: int = 200, **context: object) -> Response:
        principal = auth.current_principal(request)
        values: dict[str, Any] = {
            "town": "", "hours": "24", "minutes": "0", "reason": "", "extra": "",
        }  # fmt: skip
        values.update(context.pop("values", {}) or {})  # type: ignore[call-overload]
        return render(
            "break_glass.html",
            status_code=status_code,
            principal=principal,
            partners=partners(),
            values=values,
            **context,
        )

    @auth.require({Role.SUPERVISOR})
    async def form(request: Request) -> Response:
        return page(request)

    async def clerk_signs(
        request: Request, bg: BreakGlass, login_id: str, password: str
    ) -> dict[str, Any]:
        town, client = bg.stricken_town, auth.client_address(request)
        try:
            await asyncio.to_thread(box.throttle.reserve, town, login_id, client)
        except auth.LoginThrottled as exc:
            return {"ok": False, "error": str(exc)}
        try:
            await box.workers.ensure(town)
            answer = await box.workers.request(
                town,
                {"op": "glass_sign", "record": bg.to_json(), "login_id": login_id,
                 "password": password},
            )  # fmt: skip
            if answer.get("ok"):
                await asyncio.to_thread(box.throttle.record_success, town, login_id, client)
            elif answer.get("reason") == "password":
                await asyncio.to_thread(box.throttle.record_failure, town, login_id, client)
        except WorkerGone:
            return {"ok": False, "error": MSG_WORKER}
        finally:
            box.throttle.release(town, login_id, client)
        if not answer.get("ok"):
            box.record(town, AuditKind.LOGIN_FAILED, login_id=login_id, client=client,
                       reason=f"break_glass_{answer.get('reason', 'refused')}")  # fmt: skip
        return answer

    @auth.require({Role.SUPERVISOR})
    async def submit(request: Request) -> Response:
        principal = auth.current_principal(request)
        assert principal is not None
        data = await request.form()
        town = str(data.get("town", ""))
        values = {
            "town": town,
            "hours": str(data.get("hours", "24")).strip() or "0",
            "minutes": str(data.get("minutes", "0")).strip() or "0",
            "reason": str(data.get("reason", ""))[:200],
            "extra": str(data.get("extra", ""))[:500],
        }
        pairs = [
            (str(data.get(f"login_id_{i}", "")).strip(), str(data.get(f"password_{i}", "")))
            for i in (1, 2)
        ]

        def refuse(message: str, status_code: int = 400) -> Response:
            return page(request, status_code, error=message, values=values)

        if town not in dict(partners()):
            return refuse(MSG_TOWN)
        if not all(login and password for login, password in pairs):
            return refuse(MSG_TWO_CLERKS)
        if pairs[0][0] == pairs[1][0]:
            return refuse(MSG_SAME_CLERK)
        try:
            seconds = 3600 * int(values["hours"]) + 60 * int(values["minutes"])
        except ValueError:
            return refuse(MSG_HOURS)
        if not 0 < seconds <= MAX_BREAK_GLASS_SECONDS:
            return refuse(MSG_HOURS)
        extra = [c for c in values["extra"].replace("、", ",").replace(" ", ",").split(",") if c]
        clerks = list(dict.fromkeys([pairs[0][0], pairs[1][0], *extra]))
        try:
            now = box.activations.effective_now(box.clock.now())
            draft = BreakGlass.draft(
                stricken_town=town, host_town=own, host_box=box.config.host_box,
                clerks=clerks, now=now, hours=seconds / 3600,
                reason=values["reason"] or "代行者名簿の代表者に連絡がつかないため",
            )  # fmt: skip
        except (ClockError, ValueError) as exc:
            return refuse(str(exc))
        signatures: list[dict[str, Any]] = []
        try:
            supervisor = await box.ask(
                principal, {"op": "glass_sign", "record": draft.to_json()}
            )
        except WorkerGone:
            return refuse(MSG_WORKER, 503)
        if not supervisor.get("ok"):
            return refuse(str(supervisor.get("error", MSG_WORKER)), 403)
        signatures.append(supervisor["signature"])
        for login_id, password in pairs:
            answer = await clerk_signs(request, draft, login_id, password)
            if not answer.get("ok"):
                return refuse(f"{login_id}: {answer.get('error', '')}", 401)
            signatures.append(answer["signature"])
        bg = BreakGlass(
            draft.stricken_town, draft.host_town, draft.host_box, draft.clerks,
            draft.not_before, draft.expires_at, draft.reason,
            tuple(
                GlassSignature(s["town"], s["login_id"], s["key_id"], bytes.fromhex(s["signature"]))
                for s in signatures
            ),
        )  # fmt: skip
        try:
            accepted = box.activations.accept_break_glass(bg)
        except ActivationError as exc:
            return refuse(str(exc), 409)
        log.warning(
            "break-glass for %s on %s by supervisor %r and roster clerks %s (unratified)",
            town, own, principal.login_id, [p[0] for p in pairs],
        )  # fmt: skip
        return page(
            request,
            message=(
                f"{box.replica.town_name(town)}の緊急起動を受け付けました（未承認）。"
                f"職員 {'、'.join(accepted.clerks)} が {jst(accepted.expires_at)} まで"
                "利用できます。代行者名簿の代表者に連絡し、追認を依頼してください。"
            ),
        )

    return [
        Route("/activation/break-glass", form, methods=["GET"]),
        Route("/activation/break-glass", submit, methods=["POST"]),
    ]
