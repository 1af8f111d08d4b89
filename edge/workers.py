"""The web front's side of the per-town workers: start them on demand, talk to them.

A worker is started the first time someone tries to log in to its town and runs until
the box stops or the worker dies; a dead worker means its town is sealed again (its
sessions end). See `edge.worker` for the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class WorkerGone(Exception):
    """The town's worker is not running (its town is sealed)."""


class WorkerPool:
    def __init__(self, data_dir: Path, shards: int) -> None:
        self.data_dir = data_dir
        self.shards = shards
        self.run_dir = data_dir / "run"
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._lock = asyncio.Lock()

    def socket_path(self, town: str) -> Path:
        return self.run_dir / f"town-{town}.sock"

    def alive(self, town: str) -> bool:
        process = self.processes.get(town)
        return process is not None and process.returncode is None

    async def ensure(self, town: str) -> None:
        async with self._lock:
            if self.alive(town):
                return
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edge.worker",
                "--data", str(self.data_dir), "--town", town,
                "--socket", str(self.socket_path(town)), "--shards", str(self.shards),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert process.stdout is not None
            ready = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            if ready.strip() != b"READY":
                process.kill()
                raise WorkerGone(f"worker for {town} did not start")
            self.processes[town] = process
            log.info("worker for town %s started (pid %d)", town, process.pid)

    async def request(self, town: str, message: dict[str, Any]) -> dict[str, Any]:
        if not self.alive(town):
            raise WorkerGone(town)
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path(town)), limit=16 * 1024 * 1024
            )
        except OSError as exc:
            raise WorkerGone(town) from exc
        try:
            writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        except OSError as exc:  # the worker died mid-request
            raise WorkerGone(town) from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not line:
            raise WorkerGone(town)
        response: dict[str, Any] = json.loads(line)
        return response

    async def open_towns(self) -> list[str]:
        towns = []
        for town in sorted(self.processes):
            with contextlib.suppress(WorkerGone):
                if (await self.request(town, {"op": "ping"})).get("open"):
                    towns.append(town)
        return towns

    def pid(self, town: str) -> int | None:
        process = self.processes.get(town)
        return None if process is None else process.pid

    async def stop_town(self, town: str) -> None:
        process = self.processes.pop(town, None)
        if process is not None and process.returncode is None:
            process.terminate()
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=10)

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=10)
