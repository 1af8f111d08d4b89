"""Login plumbing (edge/auth.py): sessions, throttle, cookie attributes, roles, CSRF.

A tiny demo Starlette app, built here and only here, exercises the flow in-process over
`https://testserver` (Secure cookies are only sent back over HTTPS)."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from edge.auth import (
    MSG_CSRF,
    MSG_FORBIDDEN_ROLE,
    MSG_FORBIDDEN_TOWN,
    MSG_LOGIN_REQUIRED,
    SESSION_COOKIE,
    AuthError,
    Identity,
    LoginBackoff,
    LoginFailed,
    LoginLocked,
    LoginThrottle,
    LoginThrottled,
    SessionMiddleware,
    SessionStore,
    client_address,
    current_principal,
    log_in,
    log_out,
    login_token_ok,
    new_login_token,
    require,
    safe_next,
    set_login_token_cookie,
    set_session_cookie,
)
from shared.model import Role

SEIRO, IZUMOZAKI = "15307", "15405"
CLERK_PW = "Hanami-Sakura#2026-kouen"
SUPER_PW = "Yuki-Tsubaki#1999-minato"
VISITOR_PW = "Kaze-Nami#2011-hamabe"
USERS = {
    (SEIRO, "tanaka"): (CLERK_PW, Identity("田中 花子", frozenset({Role.CLERK}))),
    (SEIRO, "suzuki"): (SUPER_PW, Identity("鈴木 一郎", frozenset({Role.CLERK, Role.SUPERVISOR}))),
    (IZUMOZAKI, "sato"): (VISITOR_PW, Identity("佐藤 健", frozenset({Role.CLERK}))),
}
HOME_TOWN = SEIRO
T0 = 1_775_000_000.0

pytestmark = pytest.mark.anyio


class FakeTime:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 5_000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


# ---------------------------------------------------------------------------- demo app


def check_credentials(town: str, login_id: str, password: str) -> Identity | None:
    entry = USERS.get((town, login_id))
    if entry is None or entry[0] != password:
        return None
    return entry[1]


def build_demo_app(sessions: SessionStore, throttle: LoginThrottle) -> Starlette:
    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            f'<!doctype html><html lang="ja"><meta charset="utf-8"><title>{title}</title>'
            f"<body>{body}</body></html>",
            status_code=status,
        )

    def login_page(request: Request, message: str = "", status: int = 200) -> Response:
        token = new_login_token()
        nxt = html.escape(safe_next(request.query_params.get("next")))
        response = page(
            "ログイン",
            f'<p id="message">{html.escape(message)}</p>'
            '<form method="post" action="/login">'
            f'<input type="hidden" name="csrf_token" value="{token}">'
            f'<input type="hidden" name="next" value="{nxt}">'
            '<input name="town" value="15307"><input name="login_id">'
            '<input name="password" type="password"><button>ログイン</button></form>',
            status,
        )
        set_login_token_cookie(response, token)
        return response

    async def login_get(request: Request) -> Response:
        return login_page(request)

    async def login_post(request: Request) -> Response:
        form = await request.form()
        if not login_token_ok(request, form.get("csrf_token")):
            return page("エラー", MSG_CSRF, 403)
        town, login_id, password = (str(form.get(k, "")) for k in ("town", "login_id", "password"))
        try:
            principal = await log_in(
                sessions=sessions,
                throttle=throttle,
                check=check_credentials,
                town_code=town,
                login_id=login_id,
                password=password,
                client=client_address(request),
                visiting=town != HOME_TOWN,
            )
        except LoginThrottled as exc:
            response = login_page(request, str(exc), 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except LoginFailed as exc:
            return login_page(request, str(exc), 401)
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        set_session_cookie(response, principal)
        return response

    @require()
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        log_out(request, response)
        return response

    @require({Role.CLERK})
    async def counter(request: Request) -> Response:
        p = current_principal(request)
        assert p is not None
        return page(
            "窓口",
            f'<h1 id="who">{p.display_name}</h1><p id="town">{p.town_code}</p>'
            f'<form method="post" action="/towns/{p.town_code}/notes">'
            f'<input type="hidden" name="csrf_token" value="{p.csrf_token}">'
            '<input name="note"><button>保存</button></form>',
        )

    @require({Role.SUPERVISOR})
    async def approvals(request: Request) -> Response:
        return page("承認", "<h1>承認待ち</h1>")

    @require({Role.CLERK})
    async def add_note(request: Request) -> Response:
        form = await request.form()  # already read by the CSRF check: must still work
        return JSONResponse({"saved": form.get("note")})

    @require()
    async def whoami(request: Request) -> Response:
        p = current_principal(request)
        assert p is not None
        return JSONResponse(
            {"town": p.town_code, "login_id": p.login_id, "visiting": p.visiting,
             "roles": sorted(p.roles)}
        )  # fmt: skip

    @require({Role.SUPERVISOR})
    async def api_approvals(request: Request) -> Response:
        return JSONResponse({"pending": []})

    return Starlette(
        routes=[
            Route("/login", login_get, methods=["GET"]),
            Route("/login", login_post, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/towns/{town}/counter", counter),
            Route("/towns/{town}/approvals", approvals),
            Route("/towns/{town}/notes", add_note, methods=["POST", "PUT", "DELETE"]),
            Route("/api/whoami", whoami),
            Route("/api/towns/{town}/approvals", api_approvals),
        ],
        middleware=[Middleware(SessionMiddleware, sessions=sessions)],
    )


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Box:
    time: FakeTime
    sessions: SessionStore
    throttle: LoginThrottle
    client: httpx.AsyncClient
    db: Path


TERMINAL = "10.0.0.5"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    fake = FakeTime()
    sessions = SessionStore(monotonic=lambda: fake.mono)
    db = tmp_path / "throttle.sqlite"
    throttle = LoginThrottle(db, wall=lambda: fake.wall)
    app = build_demo_app(sessions, throttle)
    transport = httpx.ASGITransport(app=app, client=(TERMINAL, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield Box(fake, sessions, throttle, client, db)
    throttle.close()


TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def login(
    box: Box, login_id: str, password: str, town: str = SEIRO, next_: str = "/"
) -> httpx.Response:
    form_page = await box.client.get("/login")
    token = TOKEN.search(form_page.text)
    assert token is not None
    return await box.client.post(
        "/login",
        data={"csrf_token": token.group(1), "town": town, "login_id": login_id,
              "password": password, "next": next_},
    )  # fmt: skip


async def csrf_of(box: Box, town: str = SEIRO) -> str:
    page = await box.client.get(f"/towns/{town}/counter")
    assert page.status_code == 200
    token = TOKEN.search(page.text)
    assert token is not None
    return token.group(1)


def session_cookie_header(response: httpx.Response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)]
    assert len(headers) == 1, response.headers
    return headers[0]


# ---------------------------------------------------------------------------- login


async def test_login_success_sets_secure_httponly_strict_cookie(box: Box) -> None:
    response = await login(box, "tanaka", CLERK_PW, next_="/towns/15307/counter")
    assert response.status_code == 303
    assert response.headers["location"] == "/towns/15307/counter"
    header = session_cookie_header(response)
    attributes = [part.strip() for part in header.split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    assert not any(a.lower().startswith(("max-age", "expires", "domain")) for a in attributes)
    session_id = attributes[0].split("=", 1)[1]
    assert len(session_id) >= 43  # 32 random bytes, base64url

    page = await box.client.get("/towns/15307/counter")
    assert page.status_code == 200
    assert "田中 花子" in page.text
    me = (await box.client.get("/api/whoami")).json()
    assert me == {"town": SEIRO, "login_id": "tanaka", "visiting": False, "roles": ["clerk"]}


async def test_login_failure_gives_401_and_no_session(box: Box) -> None:
    response = await login(box, "tanaka", "wrong-password")
    assert response.status_code == 401
    assert "ログインIDまたはパスワードが違います" in response.text
    assert not [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)]
    assert (await box.client.get("/api/whoami")).status_code == 401
    assert (await login(box, "nobody", CLERK_PW)).status_code in (401, 429)


async def test_login_form_needs_its_token(box: Box) -> None:
    await box.client.get("/login")
    response = await box.client.post(
        "/login",
        data={"csrf_token": "forged", "town": SEIRO, "login_id": "tanaka", "password": CLERK_PW},
    )
    assert response.status_code == 403
    assert len(box.sessions) == 0


async def test_open_redirect_after_login_is_refused(box: Box) -> None:
    response = await login(box, "tanaka", CLERK_PW, next_="//evil.example/")
    assert response.headers["location"] == "/"
    for bad in ("https://evil.example/", "/\\evil", "", None, "/a b", "javascript:x"):
        assert safe_next(bad) == "/"
    assert safe_next("/towns/15307/counter?q=1") == "/towns/15307/counter?q=1"


async def test_visiting_clerk_is_marked(box: Box) -> None:
    assert (await login(box, "sato", VISITOR_PW, town=IZUMOZAKI)).status_code == 303
    me = (await box.client.get("/api/whoami")).json()
    assert me["town"] == IZUMOZAKI and me["visiting"] is True


async def test_logout_revokes_the_session(box: Box) -> None:
    await login(box, "tanaka", CLERK_PW)
    token = await csrf_of(box)
    response = await box.client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    cleared = session_cookie_header(response)
    assert "Max-Age=0" in cleared and "Secure" in cleared
    assert len(box.sessions) == 0
    assert (await box.client.get("/towns/15307/counter")).status_code == 303


def test_restart_logs_everyone_out(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall)
    first = SessionStore(monotonic=lambda: fake.mono)
    principal = first.create(SEIRO, "tanaka", "田中 花子", {Role.CLERK})
    assert first.get(principal.session_id) == principal
    after_restart = SessionStore(monotonic=lambda: fake.mono)
    assert after_restart.get(principal.session_id) is None
    throttle.close()


# ---------------------------------------------------------------------------- roles


async def test_not_logged_in_html_redirects_to_login_and_api_gets_401(box: Box) -> None:
    response = await box.client.get("/towns/15307/counter?tab=1")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/towns/15307/counter?tab=1"]
    api = await box.client.get("/api/whoami")
    assert api.status_code == 401
    assert api.json() == {"error": MSG_LOGIN_REQUIRED}


async def test_missing_role_is_403_with_japanese_message(box: Box) -> None:
    await login(box, "tanaka", CLERK_PW)
    page = await box.client.get("/towns/15307/approvals")
    assert page.status_code == 403
    assert MSG_FORBIDDEN_ROLE in page.text
    api = await box.client.get("/api/towns/15307/approvals")
    assert api.status_code == 403
    assert api.json() == {"error": MSG_FORBIDDEN_ROLE}


async def test_supervisor_reaches_supervisor_page(box: Box) -> None:
    await login(box, "suzuki", SUPER_PW)
    assert (await box.client.get("/towns/15307/approvals")).status_code == 200
    assert (await box.client.get("/towns/15307/counter")).status_code == 200


async def test_roles_are_checked_on_every_request(box: Box) -> None:
    await login(box, "suzuki", SUPER_PW)
    assert (await box.client.get("/towns/15307/approvals")).status_code == 200
    # roles changed on the server side (e.g. demoted): the next request sees it
    box.sessions.revoke_login(SEIRO, "suzuki")
    assert (await box.client.get("/towns/15307/approvals")).status_code == 303


# ---------------------------------------------------------------------------- towns


async def test_session_is_bound_to_one_town(box: Box) -> None:
    await login(box, "tanaka", CLERK_PW)
    page = await box.client.get("/towns/15405/counter")
    assert page.status_code == 403
    assert MSG_FORBIDDEN_TOWN in page.text
    token = await csrf_of(box)
    other_town = await box.client.post("/towns/15405/notes", headers={"X-CSRF-Token": token})
    assert other_town.status_code == 403
    assert box.sessions.revoke_town(IZUMOZAKI) == 0
    assert (await box.client.get("/towns/15307/counter")).status_code == 200
    assert box.sessions.revoke_town(SEIRO) == 1
    assert (await box.client.get("/towns/15307/counter")).status_code == 303


# ---------------------------------------------------------------------------- CSRF


async def test_csrf_missing_or_wrong_is_403(box: Box) -> None:
    await login(box, "tanaka", CLERK_PW)
    token = await csrf_of(box)
    url = "/towns/15307/notes"
    assert (await box.client.post(url, data={"note": "x"})).status_code == 403
    assert (
        await box.client.post(url, data={"note": "x", "csrf_token": token[:-1]})
    ).status_code == 403
    assert (await box.client.post(url, headers={"X-CSRF-Token": "nope"})).status_code == 403
    assert (await box.client.put(url, json={"note": "x"})).status_code == 403
    assert (await box.client.delete(url)).status_code == 403
    refused = await box.client.post(url, data={"note": "x"})
    assert MSG_CSRF in refused.text
    # a token from another session is no good either
    other = box.sessions.create(SEIRO, "suzuki", "鈴木 一郎", {Role.CLERK})
    assert (await box.client.post(url, data={"csrf_token": other.csrf_token})).status_code == 403
    assert (await box.client.post(url, data={"csrf_token": "ｘ" * 43})).status_code == 403


async def test_csrf_token_in_form_or_header_passes(box: Box) -> None:
    await login(box, "tanaka", CLERK_PW)
    token = await csrf_of(box)
    url = "/towns/15307/notes"
    form = await box.client.post(url, data={"note": "転入届受付", "csrf_token": token})
    assert form.status_code == 200
    assert form.json() == {"saved": "転入届受付"}
    header = await box.client.put(url, headers={"X-CSRF-Token": token})
    assert header.status_code == 200
    assert (await box.client.delete(url, headers={"X-CSRF-Token": token})).status_code == 200


# ---------------------------------------------------------------------------- sessions


def test_idle_and_absolute_timeouts() -> None:
    fake = FakeTime()
    store = SessionStore(monotonic=lambda: fake.mono)
    idle = store.create(SEIRO, "tanaka", "田中 花子", {Role.CLERK})
    fake.advance(29 * 60)
    assert store.get(idle.session_id) is not None  # refreshes the idle timer
    fake.advance(29 * 60)
    assert store.get(idle.session_id) is not None
    fake.advance(30 * 60)
    assert store.get(idle.session_id) is None

    busy = store.create(SEIRO, "tanaka", "田中 花子", {Role.CLERK})
    for _ in range(10 * 6 - 1):  # a request every 10 minutes for almost 10 hours
        fake.advance(10 * 60)
        assert store.get(busy.session_id) is not None
    fake.advance(10 * 60)
    assert store.get(busy.session_id) is None
    assert len(store) == 0


def test_session_ids_are_random_and_secrets_hidden_from_repr() -> None:
    store = SessionStore()
    a = store.create(SEIRO, "tanaka", "田中 花子", {Role.CLERK})
    b = store.create(SEIRO, "tanaka", "田中 花子", {Role.CLERK})
    assert a.session_id != b.session_id and a.csrf_token != b.csrf_token
    assert len(a.session_id) == 43 and len(a.csrf_token) == 43
    assert a.session_id not in repr(a) and a.csrf_token not in repr(a)
    assert store.revoke(a.session_id) and not store.revoke(a.session_id)
    assert store.get(b.session_id) == b


# ---------------------------------------------------------------------------- throttle


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall, lockout_after=99)
    waits = []
    for _ in range(9):
        throttle.record_failure(SEIRO, "tanaka", "10.0.0.5")
        with pytest.raises(LoginBackoff) as info:
            throttle.check(SEIRO, "tanaka", "10.0.0.5")
        waits.append(info.value.retry_after)
        assert f"{info.value.retry_after}秒" in str(info.value)
        fake.wall += info.value.retry_after - 0.5
        with pytest.raises(LoginBackoff):
            throttle.check(SEIRO, "tanaka", "10.0.0.5")
        fake.wall += 0.5
        throttle.check(SEIRO, "tanaka", "10.0.0.5")
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    throttle.close()


def test_lockout_after_five_failures_survives_restart(tmp_path: Path) -> None:
    fake = FakeTime()
    db = tmp_path / "throttle.sqlite"
    throttle = LoginThrottle(db, wall=lambda: fake.wall)
    for _ in range(4):
        throttle.record_failure(SEIRO, "tanaka", "10.0.0.5")
        fake.wall += 60
    throttle.check(SEIRO, "tanaka", "10.0.0.5")
    throttle.record_failure(SEIRO, "tanaka", "10.0.0.5")
    with pytest.raises(LoginLocked) as info:
        throttle.check(SEIRO, "tanaka", "10.0.0.9")  # another terminal: same account
    assert info.value.retry_after == 15 * 60
    assert "監督者" in str(info.value) and "15分" in str(info.value)
    throttle.close()

    fake.wall += 5 * 60
    restarted = LoginThrottle(db, wall=lambda: fake.wall)
    with pytest.raises(LoginLocked) as info:
        restarted.check(SEIRO, "tanaka", "10.0.0.9")
    assert info.value.retry_after == 10 * 60
    restarted.check(SEIRO, "suzuki", "10.0.0.9")  # other accounts are not affected
    restarted.check(IZUMOZAKI, "tanaka", "10.0.0.9")  # nor the same id in another town
    fake.wall += 10 * 60
    restarted.check(SEIRO, "tanaka", "10.0.0.9")  # lock over, counter starts again
    restarted.record_failure(SEIRO, "tanaka", "10.0.0.9")
    with pytest.raises(LoginBackoff):
        restarted.check(SEIRO, "tanaka", "10.0.0.9")
    restarted.close()


async def test_lockout_and_backoff_through_the_login_form(box: Box) -> None:
    first = await login(box, "tanaka", "wrong-1")
    assert first.status_code == 401
    too_soon = await login(box, "tanaka", CLERK_PW)  # even the right password is not checked
    assert too_soon.status_code == 429
    assert too_soon.headers["Retry-After"] == "1"
    for n in range(2, 6):
        box.time.advance(61)
        response = await login(box, "tanaka", f"wrong-{n}")
        assert response.status_code == (401 if n < 5 else 429)
    assert "ロック" in (await login(box, "tanaka", CLERK_PW)).text

    # a box restart: same database file, fresh throttle and sessions
    box.throttle.close()
    restarted = LoginThrottle(box.db, wall=lambda: box.time.wall)
    box.time.advance(14 * 60)
    with pytest.raises(LoginLocked):
        restarted.check(SEIRO, "tanaka", TERMINAL)
    box.time.advance(60)
    restarted.check(SEIRO, "tanaka", TERMINAL)
    restarted.close()


def test_success_resets_the_counters(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall)
    for _ in range(4):
        throttle.record_failure(SEIRO, "Tanaka", "10.0.0.5")
        fake.wall += 60
    throttle.record_success(SEIRO, "tanaka", "10.0.0.5")  # login ids are case-folded
    for _ in range(4):
        throttle.record_failure(SEIRO, "ｔａｎａｋａ", "10.0.0.5")  # and NFKC-normalised
        fake.wall += 60
    throttle.check(SEIRO, "tanaka", "10.0.0.5")  # four again, not eight: not locked
    throttle.record_failure(SEIRO, "tanaka", "10.0.0.5")
    with pytest.raises(LoginLocked):
        throttle.check(SEIRO, "tanaka", "10.0.0.5")
    throttle.unlock(SEIRO, "TANAKA")  # a supervisor lifts it
    throttle.check(SEIRO, "tanaka", "10.0.0.6")
    throttle.close()


def test_one_client_trying_many_accounts_is_locked(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall)
    for n in range(20):
        throttle.check(SEIRO, f"user{n}", "10.0.0.66")
        throttle.record_failure(SEIRO, f"user{n}", "10.0.0.66")
        fake.wall += 61
    with pytest.raises(LoginLocked) as info:
        throttle.check(SEIRO, "someone-else", "10.0.0.66")
    assert "この端末" in str(info.value)
    throttle.check(SEIRO, "someone-else", "10.0.0.67")
    throttle.close()


def test_clock_set_back_does_not_shorten_a_lock(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall, lockout_after=1)
    throttle.record_failure(SEIRO, "tanaka", "10.0.0.5")
    fake.wall -= 3600
    with pytest.raises(LoginLocked) as info:
        throttle.check(SEIRO, "tanaka", "10.0.0.5")
    assert info.value.retry_after == 15 * 60
    throttle.close()


async def test_throttle_database_holds_no_password(box: Box) -> None:
    await login(box, "tanaka", "Secret-Guess-42")
    await login(box, "tanaka", CLERK_PW)
    box.throttle.close()
    raw = b"".join(p.read_bytes() for p in box.db.parent.iterdir() if p.is_file())
    assert b"Secret-Guess-42" not in raw and CLERK_PW.encode() not in raw


# ---------------------------------------------------------------------------- logs


async def test_secrets_never_reach_the_logs(box: Box, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failed = await login(box, "tanaka", "Wrong-Guess#77-umibe")
    assert failed.status_code == 401
    box.time.advance(2)
    ok = await login(box, "tanaka", CLERK_PW)
    assert ok.status_code == 303
    token = await csrf_of(box)
    await box.client.post("/towns/15307/notes", data={"note": "x"})  # a CSRF refusal is logged
    session_id = session_cookie_header(ok).split(";")[0].split("=", 1)[1]

    assert any("login failed" in r.getMessage() for r in caplog.records)
    assert any("login ok" in r.getMessage() for r in caplog.records)
    assert any("csrf refused" in r.getMessage() for r in caplog.records)
    everything = caplog.text + "".join(
        f"{r.getMessage()}{r.args!r}{r.__dict__!r}" for r in caplog.records
    )
    for secret in ("Wrong-Guess#77-umibe", CLERK_PW, session_id, token):
        assert secret not in everything


# ---------------------------------------------------------------------------- misc


async def test_current_principal_without_middleware_fails_closed() -> None:
    async def endpoint(request: Request) -> Response:
        current_principal(request)
        return Response("unreachable")

    app = Starlette(routes=[Route("/", endpoint)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        with pytest.raises(RuntimeError, match="SessionMiddleware"):
            await client.get("/")


async def test_log_in_accepts_an_async_credential_check(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall)
    sessions = SessionStore()

    async def check(town: str, login_id: str, password: str) -> Identity | None:
        return check_credentials(town, login_id, password)

    principal = await log_in(
        sessions=sessions, throttle=throttle, check=check, town_code=SEIRO,
        login_id="suzuki", password=SUPER_PW, client="10.0.0.5",
    )  # fmt: skip
    assert principal.roles == {Role.CLERK, Role.SUPERVISOR}
    with pytest.raises(LoginFailed):
        await log_in(
            sessions=sessions, throttle=throttle, check=check, town_code=SEIRO,
            login_id="suzuki", password="nope", client="10.0.0.5",
        )  # fmt: skip
    throttle.close()


async def test_concurrent_guesses_cannot_slip_past_the_backoff(tmp_path: Path) -> None:
    fake = FakeTime()
    throttle = LoginThrottle(tmp_path / "t.sqlite", wall=lambda: fake.wall)
    sessions = SessionStore()
    checked: list[str] = []

    async def slow_check(town: str, login_id: str, password: str) -> Identity | None:
        checked.append(password)
        await anyio.sleep(0.05)  # argon2id takes a while
        return None

    outcomes: list[str] = []

    async def attempt(n: int) -> None:
        try:
            await log_in(
                sessions=sessions, throttle=throttle, check=slow_check, town_code=SEIRO,
                login_id="tanaka", password=f"guess-{n}", client=TERMINAL,
            )  # fmt: skip
        except AuthError as exc:
            outcomes.append(type(exc).__name__)

    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(attempt, n)
    assert len(checked) == 1
    assert sorted(outcomes) == ["LoginBackoff"] * 7 + ["LoginFailed"]
    with pytest.raises(LoginBackoff):  # the one failure that was checked counts
        throttle.check(SEIRO, "tanaka", TERMINAL)
    throttle.close()


def test_reserve_and_release(tmp_path: Path) -> None:
    throttle = LoginThrottle(tmp_path / "t.sqlite")
    throttle.reserve(SEIRO, "tanaka", TERMINAL)
    with pytest.raises(LoginBackoff):
        throttle.reserve(SEIRO, "tanaka", "10.0.0.9")  # same account, other terminal
    with pytest.raises(LoginBackoff):
        throttle.reserve(SEIRO, "suzuki", TERMINAL)  # same terminal, other account
    throttle.reserve(IZUMOZAKI, "tanaka", "10.0.0.9")
    throttle.release(SEIRO, "tanaka", TERMINAL)
    throttle.reserve(SEIRO, "tanaka", TERMINAL)
    throttle.close()
