"""A loop a process runs beside its web app (a box's feeds and watches, the hub's alert
evaluation): started when the app starts, cancelled when it stops (the app's lifespan).
Each loop keeps going through its own errors; the next round tries again."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _run(self) -> None:
        """The loop itself; runs until cancelled."""

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
