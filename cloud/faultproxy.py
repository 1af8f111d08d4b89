"""A TCP fault-injection proxy for loopback tests and drills: put it between any two
processes and it drops, duplicates, delays, reorders and cuts what passes.

    client ──▶ 127.0.0.1:listen ──(faults)──▶ 127.0.0.1:target

Two modes:
- "http" (default): the proxy reads each request whole (head + Content-Length body) and
  forwards it with "Connection: close", so every request is one upstream connection and
  its response ends at EOF. Faults apply per request: **drop** (swallowed; the client's
  connection is closed unanswered), **duplicate** (the request is replayed upstream on a
  second connection, before or after the real one; the replay's response is discarded —
  the model of a retransmitted request), **delay**, **reorder** (held back until another
  request has gone through, at most `hold_s`), **cut** the request part-way or the
  response part-way (both connections closed).
- "raw": bytes are piped both ways; only delay, cut and drop (a refused connection).

`down = True` refuses every connection (a partition) until set back. Decisions come from
one seeded `random.Random`, so a run can be replayed. Everything is bounded: connections
(`max_connections`), request size, read time-outs.

Only loopback addresses are accepted, for both ends (this is a test tool, never a relay)
— or addresses in `lab`, a private network of namespaces the caller created itself (the
drill's LAN, renkei/netns.py).

    python -m cloud.faultproxy --target 127.0.0.1:8700 --listen 127.0.0.1:9700 \\
        --seed 1 --drop 0.1 --duplicate 0.1 --delay 0.05 --reorder 0.1 --cut 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024
MAX_BODY = 128 * 1024 * 1024
READ_TIMEOUT_S = 60.0


class ProxyError(Exception):
    """A proxy that cannot be set up as asked (non-loopback address, bad spec)."""


@dataclass
class Faults:
    drop: float = 0.0
    duplicate: float = 0.0
    delay_s: float = 0.0  # up to this long, uniformly
    reorder: float = 0.0
    hold_s: float = 1.0  # longest a reordered request waits for another to overtake it
    cut_request: float = 0.0
    cut_response: float = 0.0
    down: bool = False


@dataclass
class ProxyStats:
    connections: int = 0
    requests: int = 0
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    reordered: int = 0
    cut_requests: int = 0
    cut_responses: int = 0
    refused: int = 0


def _loopback(host: str, lab: ipaddress.IPv4Network | None = None) -> None:
    try:
        address = ipaddress.ip_address(host)
        if address.is_loopback or (lab is not None and address in lab):
            return
    except ValueError:
        if host == "localhost":
            return
    raise ProxyError(f"{host} is not a loopback address: the fault proxy is for tests only")


@dataclass
class FaultProxy:
    target_host: str
    target_port: int
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    mode: str = "http"
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    max_connections: int = 64
    # Called with each request's head (bytes) before it is forwarded; a test uses it to
    # act at a named point of a transfer (e.g. kill the upstream process).
    on_request: Callable[[bytes], None] | None = None
    # The private network of network namespaces the caller made (never the machine's own
    # networks): both ends may also be addresses in it.
    lab: ipaddress.IPv4Network | None = None
    stats: ProxyStats = field(default_factory=ProxyStats)
    _rng: random.Random = field(init=False)
    _server: asyncio.Server | None = None
    _passed: asyncio.Event | None = None
    _slots: asyncio.Semaphore | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.lab is not None and not self.lab.is_private:
            raise ProxyError(f"{self.lab} is not a private network")
        _loopback(self.target_host, self.lab)
        _loopback(self.listen_host, self.lab)
        if self.mode not in ("http", "raw"):
            raise ProxyError(f"unknown mode {self.mode!r}")
        self._rng = random.Random(self.seed)

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        self._passed = asyncio.Event()
        self._slots = asyncio.Semaphore(self.max_connections)
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self.listen_port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    @contextlib.contextmanager
    def running(self) -> Iterator[FaultProxy]:
        """Run in a background thread with its own event loop (for synchronous tests)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=main, name="faultproxy", daemon=True)
        thread.start()
        if not started.wait(10):
            raise ProxyError("the fault proxy did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.listen_port}"

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._slots is not None
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self.stats.connections += 1
        if self.faults.down or self._slots.locked():
            self.stats.refused += 1
            await _close(writer)
            return
        async with self._slots:
            try:
                if self.mode == "raw":
                    await self._raw(reader, writer)
                else:
                    await self._http(reader, writer)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ):
                pass
            finally:
                await _close(writer)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(self.target_host, self.target_port), READ_TIMEOUT_S
        )

    async def _raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._chance(self.faults.drop):
            self.stats.dropped += 1
            return
        up_reader, up_writer = await self._open()
        cut = self._chance(self.faults.cut_request)
        budget = self._rng.randrange(1, 4096) if cut else -1

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            nonlocal budget
            while True:
                chunk = await asyncio.wait_for(src.read(65536), READ_TIMEOUT_S)
                if not chunk:
                    break
                if self.faults.delay_s:
                    await asyncio.sleep(self._rng.uniform(0, self.faults.delay_s))
                if budget >= 0:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                dst.write(chunk)
                await dst.drain()
                if budget == 0:
                    self.stats.cut_requests += 1
                    raise ConnectionResetError("cut")

        # Either direction ending (EOF, a cut, an error) ends the connection both ways.
        pumps = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(BaseException):
                    await task
            await _close(up_writer)

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        if len(head) > MAX_HEAD:
            return
        length = _content_length(head)
        body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S)
        request = _close_after(head) + body
        self.stats.requests += 1
        if self.on_request is not None:
            self.on_request(head)
        if self._chance(self.faults.drop):
            self.stats.dropped += 1
            return
        if self.faults.delay_s:
            self.stats.delayed += 1
            await asyncio.sleep(self._rng.uniform(0, self.faults.delay_s))
        if self._chance(self.faults.reorder):
            self.stats.reordered += 1
            assert self._passed is not None
            self._passed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._passed.wait(), self.faults.hold_s)
        duplicate = self._chance(self.faults.duplicate)
        replay_first = duplicate and self._rng.random() < 0.5
        if replay_first:
            await self._replay(request)
        if self._chance(self.faults.cut_request):
            self.stats.cut_requests += 1
            _, up_writer = await self._open()
            up_writer.write(request[: self._rng.randrange(1, max(2, len(request)))])
            await up_writer.drain()
            await _close(up_writer)
            return
        cut_response = self._chance(self.faults.cut_response)
        await self._forward(request, writer, cut_response)
        assert self._passed is not None
        self._passed.set()
        if duplicate and not replay_first:
            await self._replay(request)

    async def _forward(
        self, request: bytes, writer: asyncio.StreamWriter, cut_response: bool
    ) -> None:
        up_reader, up_writer = await self._open()
        try:
            up_writer.write(request)
            await up_writer.drain()
            self.stats.forwarded += 1
            budget = self._rng.randrange(1, 2048) if cut_response else -1
            while True:
                chunk = await asyncio.wait_for(up_reader.read(65536), READ_TIMEOUT_S)
                if not chunk:
                    break
                if budget >= 0:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                writer.write(chunk)
                await writer.drain()
                if budget == 0:
                    self.stats.cut_responses += 1
                    return
        finally:
            await _close(up_writer)

    async def _replay(self, request: bytes) -> None:
        self.stats.duplicated += 1
        with contextlib.suppress(OSError, TimeoutError):
            up_reader, up_writer = await self._open()
            try:
                up_writer.write(request)
                await up_writer.drain()
                while await asyncio.wait_for(up_reader.read(65536), READ_TIMEOUT_S):
                    pass
            finally:
                await _close(up_writer)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked requests are not supported")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            if not 0 <= length <= MAX_BODY:
                raise ValueError("request body too large")
            return length
    return 0


def _close_after(head: bytes) -> bytes:
    lines = [
        line
        for line in head[:-4].split(b"\r\n")
        if line.partition(b":")[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cloud.faultproxy", description=__doc__)
    parser.add_argument("--target", required=True, help="host:port to forward to (loopback)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on")
    parser.add_argument("--mode", choices=("http", "raw"), default="http")
    parser.add_argument("--seed", type=int, default=0)
    for name in ("drop", "duplicate", "delay", "reorder", "cut"):
        parser.add_argument(f"--{name}", type=float, default=0.0)
    args = parser.parse_args(argv)
    target, listen = _address(args.target), _address(args.listen)
    faults = Faults(
        drop=args.drop,
        duplicate=args.duplicate,
        delay_s=args.delay,
        reorder=args.reorder,
        cut_request=args.cut / 2,
        cut_response=args.cut / 2,
    )
    proxy = FaultProxy(
        *target,
        seed=args.seed,
        faults=faults,
        mode=args.mode,
        listen_host=listen[0],
        listen_port=listen[1],
    )

    async def serve() -> None:
        port = await proxy.start()
        print(f"fault proxy on {listen[0]}:{port} → {target[0]}:{target[1]}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
