"""The federation's TLS CA (edge/tls.py): certificate contents, a real uvicorn HTTPS server
on loopback, and a real browser logging in over HTTPS inside network namespaces.

The browser test: namespace A runs the box (uvicorn, HTTPS, a tiny app using edge/auth.py's
login flow) on 10.232.0.1; namespace B runs Playwright + Debian's Chromium, which trusts the
federation CA the way a town's terminal does — the root is installed in the NSS database of
the browser's user ($HOME/.pki/nssdb, `certutil` from libnss3-tools), and a second browser
without it must refuse the site. The 10.232.0.0/24 addresses exist only inside the two
namespaces this test creates; nothing leaves them. Not loopback on purpose: browsers waive
the Secure-cookie rule for localhost, a town's terminal never talks to localhost.

This file doubles as the helper script run inside the namespaces:

    python tests/edge/test_tls.py serve CERT_DIR HOST PORT
    python tests/edge/test_tls.py browse URL HOSTNAME_URL NO_CA_HOME OUT_JSON
"""

from __future__ import annotations

import datetime as dt
import html
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

if __name__ == "__main__":  # run as a helper script inside a namespace: find tests/netns.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netns import CHROMIUM, CHROMIUM_ARGS, namespace_pair, nss_home
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from edge.auth import (
    Identity,
    LoginFailed,
    LoginThrottle,
    LoginThrottled,
    SessionMiddleware,
    SessionStore,
    client_address,
    current_principal,
    log_in,
    login_token_ok,
    new_login_token,
    require,
    safe_next,
    set_login_token_cookie,
    set_session_cookie,
)
from edge.tls import (
    CA_COMMON_NAME,
    TLSError,
    create_ca,
    fingerprint,
    issue_server_cert,
    needs_renewal,
    spki_sha256_b64,
    ssl_kwargs,
    write_server_files,
)
from shared.model import Role

HOSTNAME = "box-15307.renkei.lan"
ADDR_A, ADDR_B = "10.232.0.1", "10.232.0.2"
PORT = 8443
CLERK, PASSWORD, NAME = "tanaka", "Hanami-Sakura#2026-kouen", "田中 花子"
# ---------------------------------------------------------------------------- demo box app


def build_app(state_dir: Path) -> Starlette:
    """A box front with one clerk: login form, and a clerk-only counter page."""
    sessions = SessionStore()
    throttle = LoginThrottle(state_dir / "throttle.sqlite")

    def check(town: str, login_id: str, password: str) -> Identity | None:
        if (town, login_id, password) == ("15307", CLERK, PASSWORD):
            return Identity(NAME, frozenset({Role.CLERK}))
        return None

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            f'<!doctype html><html lang="ja"><meta charset="utf-8"><title>{title}</title>'
            f"<body>{body}</body></html>",
            status_code=status,
        )

    async def login_get(request: Request) -> Response:
        token = new_login_token()
        nxt = html.escape(safe_next(request.query_params.get("next")))
        response = page(
            "ログイン",
            '<form method="post" action="/login">'
            f'<input type="hidden" name="csrf_token" value="{token}">'
            f'<input type="hidden" name="next" value="{nxt}">'
            '<input type="hidden" name="town" value="15307">'
            '<input id="login_id" name="login_id">'
            '<input id="password" name="password" type="password">'
            '<button id="submit">ログイン</button></form>',
        )
        set_login_token_cookie(response, token)
        return response

    async def login_post(request: Request) -> Response:
        form = await request.form()
        if not login_token_ok(request, form.get("csrf_token")):
            return page("エラー", "forbidden", 403)
        try:
            principal = await log_in(
                sessions=sessions,
                throttle=throttle,
                check=check,
                town_code=str(form.get("town", "")),
                login_id=str(form.get("login_id", "")),
                password=str(form.get("password", "")),
                client=client_address(request),
            )
        except (LoginFailed, LoginThrottled) as exc:
            return page("ログイン", f'<p id="message">{exc}</p>', 401)
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        set_session_cookie(response, principal)
        return response

    @require({Role.CLERK})
    async def counter(request: Request) -> Response:
        principal = current_principal(request)
        assert principal is not None
        return page("窓口", f'<h1 id="who">{principal.display_name}</h1>')

    return Starlette(
        routes=[
            Route("/login", login_get, methods=["GET"]),
            Route("/login", login_post, methods=["POST"]),
            Route("/counter", counter),
        ],
        middleware=[Middleware(SessionMiddleware, sessions=sessions)],
    )


def uvicorn_config(app: Starlette, cert_dir: Path) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        http="h11",
        ws="none",
        loop="asyncio",
        log_level="warning",
        log_config=None,
        **ssl_kwargs(cert_dir),  # type: ignore[arg-type]
    )


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = create_ca()
    cert, key = issue_server_cert(ca_cert, ca_key, [HOSTNAME], ["127.0.0.1", ADDR_A])
    files = write_server_files(base / "box", cert, key)
    ca_file = base / "federation-ca.pem"
    ca_file.write_bytes(ca_cert)
    return {
        "ca_cert": ca_cert,
        "ca_key": ca_key,
        "cert": cert,
        "key": key,
        "dir": base / "box",
        "files": files,
        "ca_file": ca_file,
        "base": base,
    }


@pytest.fixture
def loopback_server(pki: dict[str, Any], tmp_path: Path) -> Iterator[int]:
    sock = listening_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn_config(build_app(tmp_path), pki["dir"]))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------------------- certificates


def test_ca_certificate(pki: dict[str, Any]) -> None:
    ca = x509.load_pem_x509_certificate(pki["ca_cert"])
    assert ca.subject.rfc4514_string() == f"O=Renkei Federation,CN={CA_COMMON_NAME}"
    assert ca.issuer == ca.subject
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime == dt.timedelta(days=3650)
    ca.verify_directly_issued_by(ca)


def test_server_certificate_names_host_and_ips(pki: dict[str, Any]) -> None:
    cert = x509.load_pem_x509_certificate(pki["cert"])
    ca = x509.load_pem_x509_certificate(pki["ca_cert"])
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOSTNAME]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address(ADDR_A),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) <= dt.timedelta(days=397)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=396)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert not needs_renewal(pki["cert"])
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=380)
    assert needs_renewal(pki["cert"], now=soon)


def test_server_files_and_uvicorn_kwargs(pki: dict[str, Any]) -> None:
    files = pki["files"]
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert.stat().st_mode) == 0o644
    assert stat.S_IMODE(files.key.parent.stat().st_mode) == 0o700
    assert files.cert.read_bytes() == pki["cert"]
    assert ssl_kwargs(pki["dir"]) == {
        "ssl_certfile": str(files.cert),
        "ssl_keyfile": str(files.key),
    }
    with pytest.raises(TLSError, match="missing"):
        ssl_kwargs(pki["base"] / "nowhere")


def test_fingerprint_and_spki_pin(pki: dict[str, Any]) -> None:
    parts = fingerprint(pki["ca_cert"]).split(":")
    assert len(parts) == 32 and all(len(p) == 2 and p == p.upper() for p in parts)
    assert len(fingerprint(pki["ca_cert"], "sha1").split(":")) == 20
    assert len(spki_sha256_b64(pki["cert"])) == 44


def test_encrypted_ca_key_and_bad_inputs(pki: dict[str, Any]) -> None:
    ca_cert, ca_key = create_ca(passphrase=b"ceremony passphrase")
    assert b"ENCRYPTED" in ca_key
    with pytest.raises(TLSError, match="passphrase"):
        issue_server_cert(ca_cert, ca_key, [HOSTNAME], [])
    cert, _ = issue_server_cert(
        ca_cert, ca_key, [HOSTNAME], [], ca_passphrase=b"ceremony passphrase"
    )
    x509.load_pem_x509_certificate(cert).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca_cert)
    )
    with pytest.raises(TLSError, match="does not belong"):
        issue_server_cert(
            pki["ca_cert"], ca_key, [HOSTNAME], [], ca_passphrase=b"ceremony passphrase"
        )
    for names, ips in ([["bad_name.lan"], []], [[], ["10.0.0.300"]], [[], []], [["-x.lan"], []]):
        with pytest.raises(TLSError):
            issue_server_cert(pki["ca_cert"], pki["ca_key"], names, ips)
    with pytest.raises(TLSError):
        issue_server_cert(pki["ca_cert"], pki["ca_key"], [HOSTNAME], [], days=398)
    with pytest.raises(TLSError):
        issue_server_cert(b"not pem", pki["ca_key"], [HOSTNAME], [])


# ---------------------------------------------------------------------------- real server


def test_https_on_loopback_verifies_only_with_the_federation_ca(
    pki: dict[str, Any], loopback_server: int
) -> None:
    url = f"https://127.0.0.1:{loopback_server}/login"
    trusted = ssl.create_default_context(cafile=str(pki["ca_file"]))

    def get(verify: ssl.SSLContext | bool, sni: str | None = None) -> httpx.Response:
        # a fresh client each time: a pooled connection would skip the handshake
        with httpx.Client(verify=verify, timeout=10) as client:
            extensions = {"sni_hostname": sni} if sni else None
            return client.get(url, extensions=extensions)

    page = get(trusted)  # the fallback by IP address
    assert page.status_code == 200 and "ログイン" in page.text
    assert get(trusted, sni=HOSTNAME).status_code == 200  # by host name (given as SNI)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(trusted, sni="box-15405.renkei.lan")  # a name the certificate does not carry
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(True)  # the public roots only: no federation CA


# ---------------------------------------------------------------------------- browser in netns


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    with namespace_pair("rktls", ADDR_A, ADDR_B) as pair:
        yield pair


def test_browser_logs_in_over_https_with_the_federation_ca(
    pki: dict[str, Any], netns_pair: tuple[str, str], tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"missing {CHROMIUM}: install Debian package 'chromium' (scripts/setup.sh)")
    ns_a, ns_b = netns_pair
    script = str(Path(__file__).resolve())
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns_a, sys.executable, script, "serve",
         str(pki["dir"]), ADDR_A, str(PORT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.strip() == "READY", (ready, server.stderr.read() if server.stderr else "")
        with_ca = nss_home(tmp_path, pki["ca_file"])
        without_ca = nss_home(tmp_path, None)
        out = tmp_path / "browser.json"
        browser = subprocess.run(
            ["ip", "netns", "exec", ns_b, "env", f"HOME={with_ca}", sys.executable, script,
             "browse", f"https://{ADDR_A}:{PORT}/counter",
             f"https://{HOSTNAME}:{PORT}/login", str(without_ca), str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert browser.returncode == 0, browser.stdout + browser.stderr
        result = json.loads(out.read_text(encoding="utf-8"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()

    # logged in over HTTPS by IP address, and the protected page is shown
    assert result["login_page_url"].startswith(f"https://{ADDR_A}:{PORT}/login?next=")
    assert result["final_url"] == f"https://{ADDR_A}:{PORT}/counter"
    assert result["who"] == NAME
    cookies = {c["name"]: c for c in result["cookies"]}
    session = cookies["renkei_session"]
    assert session["secure"] is True
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["domain"] == ADDR_A and session["path"] == "/"
    assert session["expires"] == -1  # a session cookie: gone with the browser
    set_cookie = result["login_set_cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    # by host name too (the certificate's DNS name)
    assert result["hostname_title"] == "ログイン"
    # a terminal without the federation root refuses the box
    assert "ERR_CERT_AUTHORITY_INVALID" in result["without_ca_error"]


# ---------------------------------------------------------------------------- helper script


def _serve(cert_dir: str, host: str, port: str) -> None:
    state = Path(cert_dir).parent / f"state-{os.getpid()}"
    state.mkdir(exist_ok=True)
    sock = listening_socket(host, int(port))  # bound before READY: connections queue
    print("READY", flush=True)
    uvicorn.Server(uvicorn_config(build_app(state), Path(cert_dir))).run(sockets=[sock])


def _browse(url: str, hostname_url: str, no_ca_home: str, out: str) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    host = hostname_url.split("//", 1)[1].split(":", 1)[0]
    addr = url.split("//", 1)[1].split(":", 1)[0]
    resolver = f"--host-resolver-rules=MAP {host} {addr}"  # no DNS inside the namespace
    result: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, resolver]
        )
        try:
            context = browser.new_context(ignore_https_errors=False, locale="ja-JP")
            page = context.new_page()
            set_cookies: list[str] = []

            def on_response(response: Any) -> None:
                if response.url.endswith("/login") and response.request.method == "POST":
                    set_cookies.extend(
                        h["value"]
                        for h in response.headers_array()
                        if h["name"].lower() == "set-cookie"
                    )

            page.on("response", on_response)
            page.goto(url, wait_until="load", timeout=30_000)
            result["login_page_url"] = page.url
            page.fill("#login_id", CLERK)
            page.fill("#password", PASSWORD)
            with page.expect_navigation(wait_until="load", timeout=30_000):
                page.click("#submit")
            result["final_url"] = page.url
            result["who"] = page.inner_text("#who")
            result["cookies"] = context.cookies()
            result["login_set_cookie"] = "; ".join(set_cookies)
            page.goto(hostname_url, wait_until="load", timeout=30_000)
            result["hostname_title"] = page.title()
        finally:
            browser.close()
        untrusting = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": no_ca_home},
        )
        try:
            page = untrusting.new_page()
            try:
                page.goto(url, wait_until="load", timeout=30_000)
                result["without_ca_error"] = "loaded without error"
            except PlaywrightError as exc:
                result["without_ca_error"] = str(exc)
        finally:
            untrusting.close()
    Path(out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve(*sys.argv[2:5])
    elif sys.argv[1] == "browse":
        _browse(*sys.argv[2:6])
    else:
        raise SystemExit(__doc__)
