"""Sync between real processes on loopback: the hub killed with SIGKILL at named points of
a transfer, through the fault proxy; and two box processes syncing directly with the hub
gone, the hub catching up with one copy when it returns."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from servers import free_port

from cloud.faultproxy import FaultProxy, Faults
from cloud.sync_api import enrol_peer
from edge.sync_agent import AgentConfig, SyncAgent
from shared.crypto import KeyRing, TownKeys
from shared.registry import Upsert
from shared.storage import SqliteStorage
from shared.sync.errors import SyncError
from shared.sync.identity import Identity
from shared.sync.log import BlobLog, BlobRef
from shared.sync.protocol import Limits
from shared.sync.replica import IDENTITY_KEY, SyncReplica

SEIRO, IZUMOZAKI = "15307", "15405"
TOWNS = (SEIRO, IZUMOZAKI)
KEYS = {t: TownKeys.generate(t) for t in TOWNS}
POINTS = (
    "hello.before-reply",
    "exchange.before-store",
    "exchange.mid-store",
    "exchange.after-store",
    "exchange.mid-reply",
)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "renkei", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def start_hub(data: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = start(["hub", "--data", str(data), "--port", str(port)], data / "hub.log", env)
    _wait(lambda: _healthy(f"http://127.0.0.1:{port}") or process.poll() is not None, 60, "hub")
    assert process.poll() is None, (data / "hub.log").read_text()
    return process


@contextmanager
def stopped(*processes: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


def store_is_sound(path: Path) -> BlobLog:
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    storage = SqliteStorage(path)
    log = BlobLog(storage)
    assert log.verify_all() == [] and log.conflicts == []
    storage.close()
    return log


def box_agent(path: Path) -> SyncAgent:
    config = AgentConfig(SEIRO, towns=TOWNS, limits=Limits(batch_blobs=4))
    agent = SyncAgent(SqliteStorage(path), config)
    agent.replica.shards = 2
    for town in TOWNS:
        agent.replica.open_town(KeyRing(town, [KEYS[town]]))
    return agent


def sync_until_done(agent: SyncAgent, url: str, attempts: int = 20) -> None:
    for _ in range(attempts):
        try:
            agent.sync_peer(url)
            return
        except (httpx.HTTPError, SyncError):
            time.sleep(0.05)
    raise AssertionError(f"sync with {url} never completed")


@pytest.mark.slow
def test_the_hub_killed_at_named_points_twenty_times_corrupts_nothing_and_sync_resumes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "hub"
    data.mkdir()
    arm = tmp_path / "failpoint"
    arm.write_text("")
    a, b = box_agent(tmp_path / "a.db"), box_agent(tmp_path / "b.db")
    storage = SqliteStorage(data / "hub.db")
    for agent in (a, b):
        enrol_peer(storage, agent.identity.writer_id)
    storage.close()
    port = free_port()
    env = {"RENKEI_SYNC_FAILPOINT": f"file:{arm}"}
    proxy = FaultProxy("127.0.0.1", port, seed=3, faults=Faults(duplicate=0.2, delay_s=0.005))
    kills: list[str] = []
    written: list[BlobRef] = []
    started = time.monotonic()
    hubs: list[subprocess.Popen[bytes]] = []
    with proxy.running():
        hub = start_hub(data, port, env)
        hubs.append(hub)
        try:
            for i in range(20):
                point = POINTS[i % len(POINTS)]
                town = TOWNS[i % 2]
                for n, agent in enumerate((a, b)):
                    written += agent.replica.edit(
                        town,
                        [
                            Upsert("support_blocks", f"k{i}-{n}", {"i": i}, {"i": i}),
                            Upsert("households", f"h{i}-{n}", {"i": i}, {"i": i}),
                            Upsert("households", f"g{i}-{n}", {"i": i}, {"i": i}),
                        ],
                    )
                arm.write_text(point)
                for _ in range(10):  # transfer until the hub dies at the armed point
                    for agent in (a, b):
                        with suppress(httpx.HTTPError, SyncError):
                            agent.sync_peer(proxy.url)
                    if hub.poll() is not None:
                        break
                hub.wait(10)
                assert hub.returncode == -signal.SIGKILL, point
                kills.append(point)
                arm.write_text("")
                store_is_sound(data / "hub.db")
                hub = start_hub(data, port, env)
                hubs.append(hub)
                for agent in (a, b, a):
                    sync_until_done(agent, proxy.url)
                hub_log = store_is_sound(data / "hub.db")
                assert a.replica.log.have(TOWNS) == b.replica.log.have(TOWNS)
                assert hub_log.have(TOWNS) == a.replica.log.have(TOWNS)
        finally:
            with stopped(*hubs):
                pass
    took = time.monotonic() - started
    assert kills == [POINTS[i % len(POINTS)] for i in range(20)]
    assert a.replica.log.count() == b.replica.log.count() == len(written)
    assert all(a.replica.log.holds(*ref.slot) for ref in written)
    for town in TOWNS:
        for name in a.replica.registries[town].documents:
            for table in ("support_blocks", "households"):
                assert a.replica.records(town, name, table) == b.replica.records(town, name, table)
    assert a.replica.pending() == {} and b.replica.pending() == {}
    for agent, name in ((a, "a.db"), (b, "b.db")):
        agent.storage.close()  # type: ignore[attr-defined]
        store_is_sound(tmp_path / name)
    print(f"20 SIGKILLs and recoveries in {took:.1f} s; proxy {proxy.stats}")


def _box_dir(root: Path, name: str, peer_port: int, other_port: int, hub_url: str) -> Path:
    data = root / name
    data.mkdir()
    (data / "sync.json").write_text(
        json.dumps(
            {
                "peers": [f"http://127.0.0.1:{other_port}"],
                "listen": f"127.0.0.1:{peer_port}",
                "towns": [SEIRO],
                "pull_interval_s": 1,
                "watch_interval_s": 0.1,
                "push_delay_s": 0.1,
                "backoff_initial_s": 0.5,
                "backoff_max_s": 2,
            }
        )
    )
    return data


def _count(path: Path) -> int:
    storage = SqliteStorage(path)
    try:
        return len(storage.load_range((SEIRO, "log")))
    finally:
        storage.close()


def test_box_processes_sync_directly_with_the_hub_gone_and_the_hub_catches_up_once(
    tmp_path: Path,
) -> None:
    hub_data = tmp_path / "hub"
    hub_data.mkdir()
    hub_port, a_peer, b_peer = free_port(), free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    dirs = {
        "a": _box_dir(tmp_path, "a", a_peer, b_peer, hub_url),
        "b": _box_dir(tmp_path, "b", b_peer, a_peer, hub_url),
    }
    identities = {name: Identity.generate() for name in dirs}
    hub_storage = SqliteStorage(hub_data / "hub.db")
    for name, data in dirs.items():
        storage = SqliteStorage(data / "replica.db")
        storage.save(IDENTITY_KEY, identities[name].to_bytes())
        for other in dirs:
            if other != name:
                enrol_peer(storage, identities[other].writer_id)
        enrol_peer(hub_storage, identities[name].writer_id)
        storage.close()
    hub_storage.close()
    boxes = {
        name: start(
            [
                "box",
                "--hub",
                hub_url,
                "--town",
                SEIRO,
                "--data",
                str(data),
                "--port",
                str(free_port()),
            ],
            tmp_path / f"{name}.log",
        )
        for name, data in dirs.items()
    }
    with stopped(*boxes.values()):
        # The hub is not running. A clerk's session on box A writes an edit into A's store
        # (as a town worker process would); A's agent notices and pushes it to B directly.
        storage = SqliteStorage(dirs["a"] / "replica.db")
        session = SyncReplica(
            storage,
            Identity.generate(),
            towns=(SEIRO,),
            shards=2,
            keyrings=[KeyRing(SEIRO, [KEYS[SEIRO]])],
        )
        (ref,) = session.edit(SEIRO, [Upsert("support_blocks", "b1", {"r": "dv"}, {"r": "dv"})])
        storage.close()
        started = time.monotonic()
        _wait(lambda: _count(dirs["b"] / "replica.db") == 1, 60, "box B to receive the edit")
        box_to_box = time.monotonic() - started
        hub = start_hub(hub_data, hub_port)
        with stopped(hub):
            _wait(lambda: _count(hub_data / "hub.db") == 1, 60, "the hub to catch up")
            time.sleep(3)  # several more sync rounds from both boxes
            assert _count(hub_data / "hub.db") == 1
            assert _count(dirs["a"] / "replica.db") == _count(dirs["b"] / "replica.db") == 1
            hub_log = store_is_sound(hub_data / "hub.db")
            assert hub_log.holds(*ref.slot)
        for box in boxes.values():
            assert box.poll() is None
            box.send_signal(signal.SIGTERM)
    print(f"box A → box B without the hub in {box_to_box:.2f} s")
