"""systemd's service notification protocol (sd_notify), without a new dependency.

The units in `firmware/units/` are `Type=notify` with `WatchdogSec=`: systemd considers the
process started only when it says `READY=1`, and kills and restarts it when it stops
saying `WATCHDOG=1` for longer than the watchdog interval. A hung event loop therefore
turns into a restart instead of a box that answers nothing.

Wire format (sd_notify(3)): one UNIX datagram of newline-separated `KEY=VALUE` lines sent
to the socket named by `$NOTIFY_SOCKET` — a filesystem path, or an abstract-namespace name
written with a leading `@`. `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, when set, which must be
our pid) give the interval. Outside systemd none of these is set and every call here is a
silent no-op that returns False.

How `renkei box` (and `renkei hub`) use it — replace `uvicorn.run(app, **kwargs)` with

    from firmware.notify import run_uvicorn
    run_uvicorn(app, host=..., port=..., log_level="warning", **tls)

`run_uvicorn` starts uvicorn's `Server` itself, sends `READY=1` once the listening sockets
are bound (after the app's lifespan startup), then `WATCHDOG=1` every half interval from
the same event loop the requests are served on, and `STOPPING=1` on shutdown.

Errors: `NotifyError` for a malformed `$NOTIFY_SOCKET`; a socket that cannot be reached
is logged and reported as False, never raised (a missing notification must not stop the
box: systemd's timeout will say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


class NotifyError(Exception):
    """`$NOTIFY_SOCKET` is set but is not a usable socket address."""


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    if value.startswith("/"):
        return value
    raise NotifyError(f"NOTIFY_SOCKET must be an absolute path or start with '@': {value!r}")


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1" or "STATUS=...\\nWATCHDOG=1") to systemd.

    Returns True when a datagram was sent, False when not running under systemd
    (no `$NOTIFY_SOCKET`) or the socket could not be reached."""
    env = os.environ if environ is None else environ
    target = env.get("NOTIFY_SOCKET")
    if not target:
        return False
    address = _address(target)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", target, exc)
        return False
    return True


def ready(status: str = "", environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd start-up has finished (`READY=1`), with an optional status line."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""), environ)


def watchdog(environ: Mapping[str, str] | None = None) -> bool:
    """Keep-alive ping (`WATCHDOG=1`)."""
    return notify("WATCHDOG=1", environ)


def stopping(environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd a clean shutdown has begun (`STOPPING=1`)."""
    return notify("STOPPING=1", environ)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog interval in seconds, or None when no watchdog is armed for this process
    (`$WATCHDOG_USEC` unset, invalid, or `$WATCHDOG_PID` naming another process)."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


async def watchdog_loop(interval: float, environ: Mapping[str, str] | None = None) -> None:
    """Ping every `interval / 2` seconds until cancelled. It runs on the serving event loop,
    so a loop blocked by a runaway request stops the pings and systemd restarts us."""
    while True:
        watchdog(environ)
        await asyncio.sleep(interval / 2)


def run_uvicorn(app: Any, **config: Any) -> None:
    """`uvicorn.run(app, **config)` that speaks sd_notify: READY=1 once listening,
    WATCHDOG=1 while the event loop is alive, STOPPING=1 when shutdown begins."""
    import uvicorn

    class NotifyingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn re-raises SIGTERM once serve() returns, so say it here, not later.
            stopping()
            await super().shutdown(sockets)

    server = NotifyingServer(uvicorn.Config(app, **config))

    async def serve() -> None:
        pinger: asyncio.Task[None] | None = None

        async def announce() -> None:
            nonlocal pinger
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.05)
            ready(status=f"serving on {config.get('host', '127.0.0.1')}:{config.get('port')}")
            interval = watchdog_interval()
            if interval is not None:
                pinger = asyncio.create_task(watchdog_loop(interval))

        announcer = asyncio.create_task(announce())
        try:
            await server.serve()
        finally:
            for task in (announcer, pinger):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    asyncio.run(serve())
