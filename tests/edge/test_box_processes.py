"""A hub and a box as real processes on loopback: the box loads its town and searches."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.importer import import_export
from shared.export_csv import read_town
from shared.storage import SqliteStorage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url} exited"
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> Iterator[str]:
    data = tmp_path_factory.mktemp("hub")
    storage = SqliteStorage(data / "hub.db")
    assert import_export(small_export_dir, storage).ok
    storage.close()
    hub_port, box_port = _free_port(), _free_port()
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(data), "--port", str(hub_port)]
    )
    box = None
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub)
        box = subprocess.Popen(
            [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
             "--town", "15405", "--port", str(box_port)]
        )
        _wait(f"http://127.0.0.1:{box_port}", box)
        yield f"http://127.0.0.1:{box_port}"
    finally:
        for process in (box, hub):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def test_search_page_and_api_find_a_resident(federation: str, small_export_dir: Path) -> None:
    town = read_town(small_export_dir / "15405")
    person = next(r for r in town.residents if r.removal is None)
    api = httpx.get(f"{federation}/api/search", params={"q": person.kana}).json()
    assert person.id in [row["resident_id"] for row in api["results"]]
    page = httpx.get(f"{federation}/", params={"q": person.kana})
    assert page.status_code == 200
    assert person.name in page.text
    assert "データの時点" in page.text


def test_empty_and_oversized_queries_get_clear_answers(federation: str) -> None:
    assert httpx.get(f"{federation}/api/search").status_code == 400
    page = httpx.get(f"{federation}/", params={"q": "ア" * 3_000})
    assert page.status_code == 200
