"""sd_notify (firmware/notify.py) against a real UNIX datagram socket standing in for
systemd's $NOTIFY_SOCKET: the datagrams, abstract names, the watchdog interval, and a real
uvicorn process that says READY=1 only once it accepts connections, then keeps pinging."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import free_port

from firmware import notify

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def test_ready_watchdog_stopping_are_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    env = {"NOTIFY_SOCKET": path}
    assert notify.ready(status="serving", environ=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    assert notify.watchdog(env)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notify.stopping(env)
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket() -> None:
    name = f"renkei-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(10)
        assert notify.ready(environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


def test_outside_systemd_is_a_silent_no_op(tmp_path: Path) -> None:
    assert notify.ready(environ={}) is False
    # a socket that went away is logged, not raised: the box keeps serving
    assert notify.watchdog({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    with pytest.raises(notify.NotifyError):
        notify.notify("READY=1", {"NOTIFY_SOCKET": "relative/path"})


def test_watchdog_interval() -> None:
    pid = str(os.getpid())
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 30
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "zero"}) is None
    assert notify.watchdog_interval({}) is None


APP = textwrap.dedent(
    """
    import sys
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from firmware.notify import run_uvicorn

    async def health(request):
        return JSONResponse({"status": "ok"})

    run_uvicorn(Starlette(routes=[Route("/api/health", health)]),
                host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def test_uvicorn_process_says_ready_when_listening_then_pings(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")  # 0.4 s
    env.pop("WATCHDOG_PID", None)
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen([sys.executable, "-c", APP, str(port)], env=env)
    try:
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1"), first
        # READY came after the socket was bound: the port answers at once
        response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
        assert response.json() == {"status": "ok"}
        pings, started = 0, time.monotonic()
        while pings < 3:
            assert sock.recv(4096) == b"WATCHDOG=1"
            pings += 1
        assert time.monotonic() - started < 5
        process.terminate()
        messages = []
        while b"STOPPING=1" not in messages:
            messages.append(sock.recv(4096))
        # uvicorn ends by re-raising SIGTERM: systemd counts that as a clean stop
        assert process.wait(timeout=10) in (0, -15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
