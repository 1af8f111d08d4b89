"""Login plumbing for the box's web UI: sessions, login throttling, roles and CSRF.

How a password is checked is not decided here: `log_in` takes a credential check (in the
box, unwrapping the clerk's keys in the town's worker process) and does everything around
it — refuse while throttled, record the outcome, open a session bound to ONE town.

- Sessions live in memory only (`SessionStore`): a restart logs everyone out, which is
  right for a box whose towns are all sealed again on restart (BRIEF §3 Trust model).
  Ids are 32 random bytes (`secrets.token_urlsafe`); idle timeout 30 min and absolute
  timeout 10 h, both counted in monotonic time so setting the wall clock does neither.
- Failed logins are counted per (town, login id) and per client address in SQLite
  (`LoginThrottle`, WAL, synchronous=FULL) so backoff and lockout survive a restart —
  otherwise pulling the plug would reset them. Login ids are stored; passwords never are,
  and nothing here logs a password, a session id or a CSRF token.
- The session cookie is `renkei_session; Path=/; Secure; HttpOnly; SameSite=Strict`
  (HTTPS only, edge/tls.py). `SessionMiddleware` (pure ASGI) resolves it on every request;
  endpoints wrapped in `require(roles)` get 303 → /login (HTML) or 401 JSON (`/api/…`)
  without a session, 403 with a Japanese message for a missing role or another town's
  path (`{town}` path parameter), and 403 for a POST/PUT/PATCH/DELETE that does not carry
  the session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`, compared
  with `hmac.compare_digest`). Roles are checked server-side on every request.
- The login form itself, before any session exists, is protected by a double-submit token
  (`new_login_token`, cookie `renkei_login_csrf`), so another site cannot log a clerk's
  browser in under someone else's account.

Errors (`str()` is the Japanese message for the clerk; logs keep the detail):

    AuthError
     ├── LoginFailed        wrong login id or password (one message for both)
     └── LoginThrottled     too many failures; `retry_after` seconds
          ├── LoginBackoff  wait a few seconds before the next attempt is even checked
          └── LoginLocked   locked for minutes; wait, or ask a supervisor to unlock
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import inspect
import logging
import math
import secrets
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.model import Role

log = logging.getLogger(__name__)

SESSION_COOKIE = "renkei_session"
LOGIN_TOKEN_COOKIE = "renkei_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
COOKIE_ATTRIBUTES = "Path=/; Secure; HttpOnly; SameSite=Strict"

IDLE_TIMEOUT = 30 * 60.0
ABSOLUTE_TIMEOUT = 10 * 3600.0

_SCOPE_PRINCIPAL = "renkei.principal"
_SCOPE_SESSIONS = "renkei.sessions"

MSG_LOGIN_REQUIRED = "ログインしてください。"
MSG_FORBIDDEN_ROLE = (
    "この操作を行う権限がありません。権限のある職員(監督者など)に依頼してください。"
)
MSG_FORBIDDEN_TOWN = "このログインは別の町のものです。この町の職員としてログインし直してください。"
MSG_CSRF = (
    "画面の有効期限が切れたか、正しくない送信です。"
    "画面を再読み込みしてから、もう一度操作してください。"
)

# ---------------------------------------------------------------------------- errors


class AuthError(Exception):
    """Base of every error this module raises."""


class LoginFailed(AuthError):
    def __init__(self) -> None:
        super().__init__("ログインIDまたはパスワードが違います。")


class LoginThrottled(AuthError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class LoginBackoff(LoginThrottled):
    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            f"ログインに失敗しました。{seconds}秒待ってから、もう一度入力してください。",
            retry_after,
        )


class LoginLocked(LoginThrottled):
    def __init__(self, retry_after: float, *, by_client: bool = False) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        if by_client:
            message = (
                "この端末からのログインの失敗が続いたため、"
                f"約{minutes}分間ログインを受け付けません。監督者に連絡してください。"
            )
        else:
            message = (
                "ログインに続けて失敗したため、このIDは一時的にロックされています。"
                f"約{minutes}分後にもう一度お試しください。"
                "急ぐ場合は監督者にロックの解除を依頼してください。"
            )
        super().__init__(message, retry_after)


# ---------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Principal:
    """Who is logged in, for which ONE town. Secrets are kept out of the repr."""

    town_code: str
    login_id: str
    display_name: str
    roles: frozenset[Role]
    session_id: str = field(repr=False)
    csrf_token: str = field(repr=False)
    visiting: bool
    created: float  # monotonic time

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)


@dataclass
class _Entry:
    principal: Principal
    last_seen: float


class SessionStore:
    """Sessions in memory, each bound to one town. Thread-safe."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        absolute_timeout: float = ABSOLUTE_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self._monotonic = monotonic
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def create(
        self,
        town_code: str,
        login_id: str,
        display_name: str,
        roles: Iterable[Role],
        *,
        visiting: bool = False,
    ) -> Principal:
        now = self._monotonic()
        principal = Principal(
            town_code=town_code,
            login_id=login_id,
            display_name=display_name,
            roles=frozenset(Role(r) for r in roles),
            session_id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            visiting=visiting,
            created=now,
        )
        with self._lock:
            self._purge(now)
            self._entries[principal.session_id] = _Entry(principal, now)
        return principal

    def get(self, session_id: str) -> Principal | None:
        """The session's principal, refreshing its idle timer; None if unknown or expired."""
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None:
                return None
            if self._expired(entry, now):
                del self._entries[session_id]
                return None
            entry.last_seen = now
            return entry.principal

    def revoke(self, session_id: str) -> bool:
        with self._lock:
            return self._entries.pop(session_id, None) is not None

    def revoke_town(self, town_code: str) -> int:
        """End every session of a town (it was sealed, or its activation revoked)."""
        return self._revoke_where(lambda p: p.town_code == town_code)

    def revoke_login(self, town_code: str, login_id: str) -> int:
        """End every session of one clerk (password reset, role change)."""
        return self._revoke_where(lambda p: (p.town_code, p.login_id) == (town_code, login_id))

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._monotonic())
            return len(self._entries)

    def _revoke_where(self, match: Callable[[Principal], bool]) -> int:
        with self._lock:
            doomed = [sid for sid, e in self._entries.items() if match(e.principal)]
            for sid in doomed:
                del self._entries[sid]
            return len(doomed)

    def _expired(self, entry: _Entry, now: float) -> bool:
        return (
            now - entry.last_seen >= self.idle_timeout
            or now - entry.principal.created >= self.absolute_timeout
        )

    def _purge(self, now: float) -> None:
        for sid in [sid for sid, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[sid]


# ---------------------------------------------------------------------------- throttle

_MIGRATIONS = [
    # 1: consecutive failures per account (town + normalised login id) and per client.
    """
    CREATE TABLE login_failures (
        kind TEXT NOT NULL CHECK (kind IN ('account', 'client')),
        town TEXT NOT NULL,
        subject TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_failure REAL NOT NULL,
        locked_at REAL,
        PRIMARY KEY (kind, town, subject)
    ) WITHOUT ROWID
    """,
]


def _normalise_login_id(login_id: str) -> str:
    # So "Tanaka", "tanaka" and full-width "ｔａｎａｋａ" share one counter.
    return unicodedata.normalize("NFKC", login_id).strip().casefold()


class LoginThrottle:
    """Failed-login backoff and lockout, persisted in SQLite so they survive a restart.

    After n consecutive failures the next attempt is not even checked until
    min(max_delay, base_delay · 2^(n−1)) seconds have passed; after `lockout_after`
    failures of one account (or `client_lockout_after` from one client address) it is
    locked for `lockout_seconds`. Success resets the account and the client. Counters
    untouched for `forget_after` seconds start over. Only one attempt per account and per
    client is checked at a time (`reserve`/`release`). Times are wall-clock seconds (they
    must outlive a reboot); a clock set backwards only makes a wait longer.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        lockout_after: int = 5,
        client_lockout_after: int = 20,
        lockout_seconds: float = 15 * 60.0,
        forget_after: float = 24 * 3600.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lockout_after = lockout_after
        self.client_lockout_after = client_lockout_after
        self.lockout_seconds = lockout_seconds
        self.forget_after = forget_after
        self._wall = wall
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str, str]] = set()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            for number, sql in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql)
                self._db.execute(f"PRAGMA user_version = {number}")
                self._db.execute("COMMIT")

    # ------------------------------------------------------------------ public

    def check(self, town: str, login_id: str, client: str) -> None:
        """Raise LoginLocked or LoginBackoff if this attempt must not be checked now."""
        with self._lock:
            self._check(self._subjects(town, login_id, client), self._wall())

    def reserve(self, town: str, login_id: str, client: str) -> None:
        """`check`, and mark the attempt in flight until `release`: a second attempt for
        the same account or from the same client meanwhile gets LoginBackoff, so firing
        many guesses at once cannot slip past the backoff while the first is checked."""
        subjects = self._subjects(town, login_id, client)
        with self._lock:
            if any(s in self._in_flight for s in subjects):
                raise LoginBackoff(self.base_delay)
            self._check(subjects, self._wall())
            self._in_flight.update(subjects)

    def release(self, town: str, login_id: str, client: str) -> None:
        with self._lock:
            self._in_flight.difference_update(self._subjects(town, login_id, client))

    def record_failure(self, town: str, login_id: str, client: str) -> None:
        now = self._wall()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for kind, t, s in self._subjects(town, login_id, client):
                    failures, _, _ = self._current(kind, t, s, now)
                    failures += 1
                    limit = self.lockout_after if kind == "account" else self.client_lockout_after
                    locked_at = now if failures >= limit else None
                    self._db.execute(
                        "INSERT OR REPLACE INTO login_failures VALUES (?, ?, ?, ?, ?, ?)",
                        (kind, t, s, failures, now, locked_at),
                    )
                    if locked_at is not None:
                        log.warning(
                            "login locked: kind=%s town=%s subject=%r failures=%d",
                            kind,
                            t,
                            s,
                            failures,
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_success(self, town: str, login_id: str, client: str) -> None:
        self._delete(self._subjects(town, login_id, client))

    def unlock(self, town: str, login_id: str) -> None:
        """A supervisor lifts a lockout of one account (and its backoff)."""
        self._delete([("account", town, _normalise_login_id(login_id))])

    # ------------------------------------------------------------------ internals

    def _check(self, subjects: list[tuple[str, str, str]], now: float) -> None:
        waits: list[LoginBackoff] = []
        for kind, t, s in subjects:
            failures, last_failure, locked_at = self._current(kind, t, s, now)
            if locked_at is not None:
                remaining = self.lockout_seconds - max(0.0, now - locked_at)
                raise LoginLocked(remaining, by_client=kind == "client")
            if failures:
                remaining = self._delay(failures) - max(0.0, now - last_failure)
                if remaining > 0:
                    waits.append(LoginBackoff(remaining))
        if waits:
            raise max(waits, key=lambda e: e.retry_after)

    def _subjects(self, town: str, login_id: str, client: str) -> list[tuple[str, str, str]]:
        return [("account", town, _normalise_login_id(login_id)), ("client", "", client)]

    def _delay(self, failures: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2 ** min(failures - 1, 62)))

    def _current(
        self, kind: str, town: str, subject: str, now: float
    ) -> tuple[int, float, float | None]:
        """(failures, last_failure, locked_at) in force now; expired locks start over."""
        row = self._db.execute(
            "SELECT failures, last_failure, locked_at FROM login_failures "
            "WHERE kind = ? AND town = ? AND subject = ?",
            (kind, town, subject),
        ).fetchone()
        if row is None:
            return 0, 0.0, None
        failures, last_failure, locked_at = int(row[0]), float(row[1]), row[2]
        if locked_at is not None:
            if now - float(locked_at) >= self.lockout_seconds:
                return 0, 0.0, None
            return failures, last_failure, float(locked_at)
        if now - last_failure >= self.forget_after:
            return 0, 0.0, None
        return failures, last_failure, None

    def _delete(self, subjects: Iterable[tuple[str, str, str]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for kind, t, s in subjects:
                    self._db.execute(
                        "DELETE FROM login_failures WHERE kind = ? AND town = ? AND subject = ?",
                        (kind, t, s),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


# ---------------------------------------------------------------------------- log in


@dataclass(frozen=True)
class Identity:
    """What a successful credential check yields."""

    display_name: str
    roles: frozenset[Role]


CredentialCheck = Callable[[str, str, str], Identity | Awaitable[Identity | None] | None]
"""check(town_code, login_id, password) -> Identity, or None for wrong id/password."""


async def log_in(
    *,
    sessions: SessionStore,
    throttle: LoginThrottle,
    check: CredentialCheck,
    town_code: str,
    login_id: str,
    password: str,
    client: str,
    visiting: bool = False,
) -> Principal:
    """Check credentials unless throttled, record the outcome, open a session.

    Raises LoginBackoff/LoginLocked (nothing was checked) or LoginFailed (or LoginLocked
    when this failure locked the account). The password goes to `check` and nowhere else."""
    await to_thread.run_sync(throttle.reserve, town_code, login_id, client)
    try:
        outcome = check(town_code, login_id, password)
        identity: Identity | None
        if inspect.isawaitable(outcome):
            identity = await outcome
        else:
            identity = outcome
        if identity is None:
            await to_thread.run_sync(throttle.record_failure, town_code, login_id, client)
        else:
            await to_thread.run_sync(throttle.record_success, town_code, login_id, client)
    finally:
        throttle.release(town_code, login_id, client)
    if identity is None:
        log.warning("login failed: town=%s login_id=%r client=%s", town_code, login_id, client)
        with contextlib.suppress(LoginBackoff):  # but tell at once if it is now locked
            await to_thread.run_sync(throttle.check, town_code, login_id, client)
        raise LoginFailed()
    principal = sessions.create(
        town_code, login_id, identity.display_name, identity.roles, visiting=visiting
    )
    log.info(
        "login ok: town=%s login_id=%r client=%s visiting=%s roles=%s",
        town_code,
        login_id,
        client,
        visiting,
        ",".join(sorted(principal.roles)),
    )
    return principal


def client_address(request: HTTPConnection) -> str:
    return request.client.host if request.client else "unknown"


# ---------------------------------------------------------------------------- cookies


def set_session_cookie(response: Response, principal: Principal) -> None:
    """A session cookie (no Max-Age: it ends with the browser), HTTPS only."""
    response.headers.append(
        "set-cookie", f"{SESSION_COOKIE}={principal.session_id}; {COOKIE_ATTRIBUTES}"
    )


def clear_session_cookie(response: Response) -> None:
    response.headers.append(
        "set-cookie",
        f"{SESSION_COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        + COOKIE_ATTRIBUTES,
    )


def log_out(request: HTTPConnection, response: Response) -> None:
    """End the request's session (if any) and clear its cookie on `response`."""
    principal = current_principal(request)
    if principal is not None:
        request.scope[_SCOPE_SESSIONS].revoke(principal.session_id)
        log.info("logout: town=%s login_id=%r", principal.town_code, principal.login_id)
    clear_session_cookie(response)


def new_login_token() -> str:
    """A token for the login form: embed it as `csrf_token` and pass it to
    `set_login_token_cookie` on the same response."""
    return secrets.token_urlsafe(32)


def set_login_token_cookie(response: Response, token: str) -> None:
    response.headers.append(
        "set-cookie", f"{LOGIN_TOKEN_COOKIE}={token}; Max-Age=3600; {COOKIE_ATTRIBUTES}"
    )


def login_token_ok(request: HTTPConnection, submitted: object) -> bool:
    """The login form's token matches the cookie set with it (double submit)."""
    cookie = request.cookies.get(LOGIN_TOKEN_COOKIE, "")
    return _same_token(cookie, submitted)


def _same_token(expected: str, supplied: object) -> bool:
    if not expected or not isinstance(supplied, str) or not supplied:
        return False
    return hmac.compare_digest(expected.encode(), supplied.encode())


# ---------------------------------------------------------------------------- middleware


class SessionMiddleware:
    """Resolves the `renkei_session` cookie on every HTTP request (pure ASGI)."""

    def __init__(self, app: ASGIApp, sessions: SessionStore) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            session_id = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
            scope[_SCOPE_SESSIONS] = self.sessions
            scope[_SCOPE_PRINCIPAL] = self.sessions.get(session_id) if session_id else None
        await self.app(scope, receive, send)


def current_principal(request: HTTPConnection) -> Principal | None:
    if _SCOPE_SESSIONS not in request.scope:
        raise RuntimeError("edge.auth.SessionMiddleware is not installed")
    principal: Principal | None = request.scope[_SCOPE_PRINCIPAL]
    return principal


Endpoint = Callable[[Request], Awaitable[Response]]


def require(roles: Iterable[Role] | None = None) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint: a session is required, one of `roles` if given (any of them),
    the `{town}` path parameter (if the route has one) must be the session's town, and
    unsafe methods must carry the session's CSRF token."""
    wanted = frozenset(roles or ())

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            principal = current_principal(request)
            if principal is None:
                return _login_required(request)
            town = request.path_params.get("town")
            if town is not None and town != principal.town_code:
                log.warning(
                    "forbidden: town=%s login_id=%r asked for town %s",
                    principal.town_code,
                    principal.login_id,
                    town,
                )
                return _forbidden(request, MSG_FORBIDDEN_TOWN)
            if wanted and not principal.has_any(wanted):
                log.warning(
                    "forbidden: town=%s login_id=%r lacks %s for %s",
                    principal.town_code,
                    principal.login_id,
                    ",".join(sorted(wanted)),
                    request.url.path,
                )
                return _forbidden(request, MSG_FORBIDDEN_ROLE)
            if request.method in UNSAFE_METHODS and not await csrf_ok(request, principal):
                log.warning(
                    "csrf refused: town=%s login_id=%r %s %s",
                    principal.town_code,
                    principal.login_id,
                    request.method,
                    request.url.path,
                )
                return _forbidden(request, MSG_CSRF)
            return await endpoint(request)

        return guarded

    return decorate


async def csrf_ok(request: Request, principal: Principal) -> bool:
    """The request carries the session's CSRF token (header, or form field)."""
    supplied: Any = request.headers.get(CSRF_HEADER)
    if supplied is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            supplied = (await request.form()).get(CSRF_FIELD)
    return _same_token(principal.csrf_token, supplied)


def is_api(request: HTTPConnection) -> bool:
    path = request.url.path
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith("/api/")


def safe_next(value: object, default: str = "/") -> str:
    """A post-login redirect target: a local absolute path only (no open redirect)."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and all(ch.isprintable() and not ch.isspace() for ch in value)
    ):
        return value
    return default


def _login_required(request: Request) -> Response:
    if is_api(request):
        return JSONResponse({"error": MSG_LOGIN_REQUIRED}, status_code=401)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    root = request.scope.get("root_path") or ""
    return RedirectResponse(f"{root}/login?next={quote(here, safe='')}", status_code=303)


def _forbidden(request: Request, message: str) -> Response:
    if is_api(request):
        return JSONResponse({"error": message}, status_code=403)
    return HTMLResponse(
        '<!doctype html><html lang="ja"><meta charset="utf-8"><title>権限がありません</title>'
        f"<p>{message}</p></html>",
        status_code=403,
    )
