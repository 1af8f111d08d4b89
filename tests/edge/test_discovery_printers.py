"""The print-queue seam (edge/discovery.py `PrinterQueues`): one conformance test run by
the in-memory implementation and by `LpadminQueues` against the real cupsd (scripts/
services.sh) with a real IPP Everywhere printer, `ippeveprinter`, on loopback — `lpadmin
-m everywhere` makes cupsd ask the printer for its capabilities."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import free_port

from edge.discovery import LpadminQueues, MemoryQueues, PrinterQueueError, PrinterQueues

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def printer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ippeveprinter on 127.0.0.1; yields its URI."""
    if os.geteuid() != 0:
        pytest.fail("needs root (cupsd administration)")
    for tool, package in (("ippeveprinter", "cups-ipp-utils"), ("lpadmin", "cups-client")):
        if shutil.which(tool) is None:
            pytest.fail(f"missing {tool}: install Debian package {package!r}")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "start"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"scripts/services.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    port = free_port()
    spool = tmp_path_factory.mktemp("ippeve")
    process = subprocess.Popen(
        ["ippeveprinter", "-c", "/bin/true", "-d", str(spool), "-n", "localhost",
         "-p", str(port), "Renkei conformance printer"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "ippeveprinter did not start"
                assert process.poll() is None, "ippeveprinter exited"
                time.sleep(0.1)
        yield f"ipp://localhost:{port}/ipp/print"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=["memory", "cups"])
def queues(request: pytest.FixtureRequest) -> Iterator[tuple[PrinterQueues, str]]:
    if request.param == "memory":
        yield MemoryQueues(), "ipp://192.0.2.1:631/ipp/print"
        return
    uri = request.getfixturevalue("printer")
    made = LpadminQueues()
    yield made, uri
    for name in asyncio.run(made.list()):
        if name.startswith(f"renkei-conformance-{os.getpid()}"):
            subprocess.run(["lpadmin", "-x", name], capture_output=True, check=False)


def test_printer_queue_conformance(queues: tuple[PrinterQueues, str]) -> None:
    implementation, uri = queues
    name = f"renkei-conformance-{os.getpid()}"

    async def scenario() -> None:
        assert name not in await implementation.list()
        await implementation.add(name, uri, "聖籠町役場 2階 複合機")
        assert (await implementation.list())[name] == uri
        await implementation.add(name, uri, "聖籠町役場 2階 複合機（更新）")  # idempotent
        assert (await implementation.list())[name] == uri
        with pytest.raises(PrinterQueueError):
            await implementation.add(f"{name}-bad", "smb://nowhere/share", "bad")
        assert f"{name}-bad" not in await implementation.list()
        await implementation.remove(name)
        assert name not in await implementation.list()

    asyncio.run(scenario())


def test_a_missing_lpadmin_is_a_clear_error() -> None:
    with pytest.raises(PrinterQueueError, match="cannot run"):
        asyncio.run(LpadminQueues("/nonexistent/lpadmin").add("q", "ipp://x/", "x"))
