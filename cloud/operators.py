"""The hub operator's login for the hub's screens (cloud/screens.py).

The hub had no login: its pages were status only. The screens show replica health, the
intake queue and reconciliation reports — no resident's name, but enough about the towns'
operations that only the cloud centre's operators should see them.

Operators are listed in `DATA/operators.json` ({login: argon2id hash (nacl.pwhash)}),
written by `renkei hub-operator add` at the console; passwords are never stored or logged.
Sessions live in memory (a restart logs everyone out), 30 min idle / 10 h absolute; the
cookie is `renkei_hub_session; HttpOnly; SameSite=Strict; Path=/` (plus `Secure` behind
HTTPS). Every form carries the session's CSRF token; the login form a double-submit token.
Five failed logins of one login id lock it for 15 minutes.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import nacl.exceptions
import nacl.pwhash

FILE_NAME = "operators.json"
SESSION_COOKIE = "renkei_hub_session"
LOGIN_COOKIE = "renkei_hub_login"
IDLE_S = 30 * 60.0
ABSOLUTE_S = 10 * 3600.0
LOCK_AFTER = 5
LOCK_S = 15 * 60.0
MIN_PASSWORD = 12


class OperatorError(Exception):
    """A login or an operator change refused (message in Japanese)."""


def _norm(login: str) -> str:
    return unicodedata.normalize("NFKC", login).strip().casefold()


def add_operator(data_dir: Path, login: str, password: str) -> None:
    """Add or replace an operator (argon2id MODERATE)."""
    login = _norm(login)
    if not login or len(password) < MIN_PASSWORD:
        raise OperatorError(f"ログインIDと{MIN_PASSWORD}文字以上のパスワードを指定してください。")
    path = data_dir / FILE_NAME
    table = json.loads(path.read_text()) if path.exists() else {}
    table[login] = nacl.pwhash.argon2id.str(
        password.encode(),
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_MODERATE,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_MODERATE,
    ).decode()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
    tmp.chmod(0o600)
    tmp.replace(path)


@dataclass
class OperatorSession:
    login: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)


class Operators:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._sessions: dict[str, OperatorSession] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _hashes(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def configured(self) -> bool:
        return bool(self._hashes())

    def log_in(self, login: str, password: str) -> tuple[str, OperatorSession]:
        """(session id, session) or OperatorError. One message for a wrong id or password."""
        login = _norm(login)
        now = time.monotonic()
        with self._lock:
            count, since = self._failures.get(login, (0, 0.0))
            if count >= LOCK_AFTER and now - since < LOCK_S:
                raise OperatorError(
                    "ログインに続けて失敗したため、このIDは約15分間ロックされています。"
                )
        stored = self._hashes().get(login)
        ok = False
        if stored is not None:
            try:
                ok = nacl.pwhash.argon2id.verify(stored.encode(), password.encode())
            except nacl.exceptions.InvalidkeyError:
                ok = False
        with self._lock:
            if not ok:
                count, _ = self._failures.get(login, (0, 0.0))
                self._failures[login] = (count + 1, now)
                raise OperatorError("ログインIDまたはパスワードが違います。")
            self._failures.pop(login, None)
            session_id = secrets.token_urlsafe(32)
            session = self._sessions[session_id] = OperatorSession(login)
        return session_id, session

    def get(self, session_id: str | None) -> OperatorSession | None:
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.seen > IDLE_S or now - session.created > ABSOLUTE_S:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def log_out(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def same_token(expected: str, supplied: object) -> bool:
    return (
        bool(expected)
        and isinstance(supplied, str)
        and hmac.compare_digest(expected.encode(), supplied.encode())
    )
