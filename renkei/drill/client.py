"""The drill's hands at the counter: a browser without JavaScript, driving a box's real
pages (login, search, household, request form, activation) over HTTPS, and noting what it
sent and what came back as evidence.

Forms are filled from the pages themselves (the CSRF token is read from the form the box
served), so a flow that completes here completes in any browser that can submit a form.
"""

# ruff: noqa: E501 — the evidence and report lines are Japanese sentences, kept whole for grep

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from renkei.drill.evidence import Check

# Terminals of the report's era, and a current one.
USER_AGENTS = {
    "xp": "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)",
    "win7": "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
    "current": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
}

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
_RESIDENT_LINK = re.compile(r'href="/resident/([^"]+)"')
_FILENAME = re.compile(r'filename="[a-z_]+-([^"]+)\.pdf"')
_DISTRICT = re.compile(r'<select id="district" name="district">\s*<option value="([^"]+)"')


def client_for(url: str, ca_file: Path | None, agent: str = "current") -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    return httpx.Client(
        base_url=url,
        verify=context,
        timeout=httpx.Timeout(120.0, connect=5.0),
        headers={"User-Agent": USER_AGENTS[agent]},
    )


def csrf(page: str) -> str:
    found = _CSRF.search(page)
    return found.group(1) if found else ""


@dataclass
class Issued:
    """A document the box handed over."""

    number: str
    pdf: bytes
    seconds: float  # search → document
    steps: list[tuple[str, int, float]]  # (request, status, seconds)


class Counter:
    """One terminal's session with a box."""

    def __init__(self, url: str, ca_file: Path | None, agent: str = "current") -> None:
        self.url = url
        self.agent = agent
        self.http = client_for(url, ca_file, agent)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ login

    def log_in(self, town: str, login_id: str, password: str) -> tuple[httpx.Response, float]:
        """The login form, as a clerk types it; waits out a short throttle backoff left
        by an earlier deliberate failure."""
        started = time.monotonic()
        response: httpx.Response | None = None
        for _ in range(6):
            self.http.get("/login").raise_for_status()
            token = self.http.cookies.get("renkei_login_csrf") or ""
            form = {"csrf_token": token, "town": town, "login_id": login_id,
                    "password": password}  # fmt: skip
            response = self.http.post("/login", data=form)
            if "秒待ってから" not in response.text:
                break
            time.sleep(2)
        assert response is not None
        return response, time.monotonic() - started

    def login_check(
        self, check: Check, town: str, login_id: str, password: str, *, expect: int = 303
    ) -> httpx.Response | None:
        """Log in and note the outcome against what is expected (303: in; 401/403: a
        refusal)."""
        try:
            response, seconds = self.log_in(town, login_id, password)
        except httpx.HTTPError as exc:
            check.see(
                "request", f"POST {self.url}/login（{town} {login_id}）→ 接続できません: {exc}"
            )
            check.ok(False, "ボックスに接続できません")
            return None
        status = response.status_code
        kind = "request" if status == 303 else "refusal"
        note = _alert(response.text) if status != 303 else "ログイン"
        check.see(kind, f"POST {self.url}/login 町村={town} 職員ID={login_id} → {status} {note}",
                  status=status, town=town, login_id=login_id, seconds=round(seconds, 3))  # fmt: skip
        if expect == 303:
            check.ok(status == 303, f"ログインできません（{status}）")
        else:
            check.ok(status in (401, 403), f"拒否されるはずのログインが通りました（{status}）")
        return response

    # ------------------------------------------------------------------ pages

    def health(self) -> dict[str, Any]:
        return dict(self.http.get("/api/health").json())

    def search_page(self, query: str) -> httpx.Response:
        return self.http.get("/", params={"q": query})

    def issue(
        self,
        document: str,
        subject_id: str,
        kana: str,
        applicant: str,
        extra: dict[str, str] | None = None,
    ) -> Issued:
        """Search → household → the request form for `document` → PDF, timed from the
        search (docs/counter.md: `GET /resident/{id}?document=KEY`, `POST /issue`)."""
        steps: list[tuple[str, int, float]] = []
        started = time.monotonic()

        def step(label: str, response: httpx.Response, at: float) -> httpx.Response:
            steps.append((label, response.status_code, round(time.monotonic() - at, 3)))
            return response

        at = time.monotonic()
        found = step(f"GET /?q={kana}", self.search_page(kana), at)
        links = _RESIDENT_LINK.findall(found.text)
        if found.status_code != 200 or not any(link.startswith(subject_id) for link in links):
            raise FlowError(f"検索で対象者が見つかりません（{found.status_code}）", steps)
        at = time.monotonic()
        path = f"/resident/{subject_id}?document={document}"
        page = step(f"GET {path}", self.http.get(f"/resident/{subject_id}",
                                                 params={"document": document}), at)  # fmt: skip
        if page.status_code != 200 or 'action="/issue"' not in page.text:
            raise FlowError(f"請求画面が開きません（{page.status_code}）", steps)
        form = {
            "csrf_token": csrf(page.text), "document": document, "subject": subject_id,
            "requester": "本人", "applicant_name": applicant, "applicant_id": subject_id,
            "identity": "顔写真付き書類1点", "documents": "運転免許証", "copies": "1",
            "output": "download", **(extra or {}),
        }  # fmt: skip
        at = time.monotonic()
        issued = step(f"POST /issue（{document}・本人・運転免許証）",
                      self.http.post("/issue", data=form), at)  # fmt: skip
        return _document(issued, time.monotonic() - started, steps)

    def issue_list(self) -> Issued:
        """The districts page → a 大字's 全住民一覧 (`POST /list`), timed from the page."""
        steps: list[tuple[str, int, float]] = []
        started = time.monotonic()
        page = self.http.get("/districts")
        steps.append(("GET /districts", page.status_code, round(time.monotonic() - started, 3)))
        district = _DISTRICT.search(page.text)
        if page.status_code != 200 or district is None:
            raise FlowError(f"大字別の名簿の画面が開きません（{page.status_code}）", steps)
        form = {
            "csrf_token": csrf(page.text), "list": "all", "district": district.group(1),
            "recipient": "災害対策本部", "purpose": "安否確認", "leaves_office": "1",
            "output": "download",
        }  # fmt: skip
        at = time.monotonic()
        issued = self.http.post("/list", data=form)
        steps.append((f"POST /list（{district.group(1)}・災害対策本部・安否確認）",
                      issued.status_code, round(time.monotonic() - at, 3)))  # fmt: skip
        return _document(issued, time.monotonic() - started, steps)

    def activation(self, code: str) -> httpx.Response:
        page = self.http.get("/activation")
        return self.http.post(
            "/activation", data={"csrf_token": csrf(page.text), "code": code, "action": "accept"}
        )


def _document(response: httpx.Response, seconds: float, steps: list[Any]) -> Issued:
    if response.headers.get("content-type", "") != "application/pdf":
        raise FlowError(f"交付されません（{response.status_code}）: {_alert(response.text)}", steps)
    named = _FILENAME.search(response.headers.get("content-disposition", ""))
    return Issued(named.group(1) if named else "", response.content, seconds, steps)


class FlowError(Exception):
    def __init__(self, message: str, steps: list[tuple[str, int, float]]) -> None:
        super().__init__(message)
        self.steps = steps


def _alert(html: str) -> str:
    found = re.search(r'role="alert">([^<]*)<', html)
    return found.group(1).strip()[:120] if found else ""


def alert_text(html: str) -> str:
    return _alert(html)
