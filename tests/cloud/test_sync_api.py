"""The sync endpoints and the box agent over real HTTP on loopback (in-process servers):
hub↔box, refusals, and box↔box with the hub stopped (then the hub catching up)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from plaintext_scan import scan
from servers import free_port, serve
from starlette.applications import Starlette

from cloud.app import create_app
from cloud.sync_api import MEDIA_TYPE, enrol_peer, sync_routes
from edge.sync_agent import AgentConfig, SyncAgent, connect_peers, run_session
from shared.blobs import BlobDecryptError, open_blob
from shared.crypto import KeyRing, TownKeys
from shared.model import TownExport
from shared.records import to_record
from shared.registry import Upsert
from shared.storage import MemoryStorage, SqliteStorage
from shared.sync import identity
from shared.sync.log import BlobLog
from shared.sync.messages import Exchange, Hello, Refusal, Reply, Welcome, decode, encode
from shared.sync.protocol import Initiator, Limits

SEIRO, IZUMOZAKI = "15307", "15405"
KEYS = {t: TownKeys.generate(t) for t in (SEIRO, IZUMOZAKI)}


def ring(town: str) -> KeyRing:
    return KeyRing(town, [KEYS[town]])


def block(record_id: str, **fields: object) -> Upsert:
    return Upsert("support_blocks", record_id, dict(fields), dict(fields))


def household(record_id: str, **fields: object) -> Upsert:
    return Upsert("households", record_id, dict(fields), dict(fields))


def agent(hub_url: str | None, **kw: object) -> SyncAgent:
    config = AgentConfig(SEIRO, hub_url=hub_url, towns=(SEIRO, IZUMOZAKI), **kw)  # type: ignore[arg-type]
    box = SyncAgent(MemoryStorage(), config)
    box.replica.shards = 2
    return box


def enrol(data_dir: Path, *agents: SyncAgent) -> None:
    storage = SqliteStorage(data_dir / "hub.db")
    for box in agents:
        enrol_peer(storage, box.identity.writer_id)
    storage.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    data = tmp_path / "hub"
    data.mkdir()
    SqliteStorage(data / "hub.db").close()
    with serve(create_app(data)) as url:
        yield data, url


def post(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"content-type": MEDIA_TYPE})


def test_an_edit_on_one_box_reaches_another_through_the_hub(hub: tuple[Path, str]) -> None:
    data, url = hub
    a, b = agent(url), agent(url)
    enrol(data, a, b)
    a.replica.open_town(ring(SEIRO))
    b.replica.open_town(ring(SEIRO))
    a.replica.edit(SEIRO, [block("b1", reason="dv"), household("h1", size=3)])
    a.sync_peer(url)
    b.sync_peer(url)
    assert b.replica.records(SEIRO, "blocks", "support_blocks") == {"b1": {"reason": "dv"}}
    assert b.replica.log.have([SEIRO]) == a.replica.log.have([SEIRO])
    hub_storage = SqliteStorage(data / "hub.db")
    hub_log = BlobLog(hub_storage)
    assert hub_log.count(SEIRO) == 2 and hub_log.verify_all() == []
    hub_storage.close()


def test_a_large_backlog_moves_in_bounded_batches(hub: tuple[Path, str]) -> None:
    data, url = hub
    a, b = agent(url, limits=Limits(batch_blobs=5)), agent(url, limits=Limits(batch_blobs=5))
    enrol(data, a, b)
    a.replica.open_town(ring(SEIRO))
    for i in range(23):
        a.replica.edit(SEIRO, [household(f"h{i}", n=i)])
    (push,) = [s for s in a.sync_peer(url) if s.stats.sent]
    assert push.stats.sent == 23 and push.stats.rounds == 5  # 5 + 5 + 5 + 5 + 3
    (pull,) = [s for s in b.sync_peer(url) if s.stats.stored]
    assert pull.stats.stored == 23
    assert b.replica.log.count(SEIRO) == 23


def test_the_hub_refuses_unenrolled_replayed_malformed_and_oversized_requests(
    hub: tuple[Path, str],
) -> None:
    data, url = hub
    a = agent(url)
    a.replica.open_town(ring(SEIRO))
    a.replica.edit(SEIRO, [household("h1", n=1)])
    initiator = Initiator(a.replica.log, a.identity, (SEIRO,))
    welcome = decode(post(url, f"/api/sync/{SEIRO}/hello", encode(initiator.start())).content)
    assert isinstance(welcome, Welcome)
    exchange = initiator.receive(welcome)
    assert isinstance(exchange, Exchange)
    refused = post(url, f"/api/sync/{SEIRO}/exchange", encode(exchange))
    assert refused.status_code == 403 and decode(refused.content).code == "auth"  # type: ignore[union-attr]
    enrol(data, a)
    with httpx.Client(base_url=url) as client:
        run_session(client, a.service, a.identity, SEIRO, limits=Limits())
    # A replayed exchange (same nonce) is refused and changes nothing.
    a.replica.edit(SEIRO, [household("h2", n=2)])
    initiator = Initiator(a.replica.log, a.identity, (SEIRO,))
    welcome = decode(post(url, f"/api/sync/{SEIRO}/hello", encode(initiator.start())).content)
    exchange = initiator.receive(welcome)  # type: ignore[arg-type]
    first = post(url, f"/api/sync/{SEIRO}/exchange", encode(exchange))  # type: ignore[arg-type]
    assert first.status_code == 200 and isinstance(decode(first.content), Reply)
    again = post(url, f"/api/sync/{SEIRO}/exchange", encode(exchange))  # type: ignore[arg-type]
    assert again.status_code == 409 and decode(again.content).code == "nonce"  # type: ignore[union-attr]
    # The wrong town for the path, garbage, and a body above the limit.
    other = encode(Hello("s", a.identity.writer_id, (IZUMOZAKI,)))
    assert post(url, f"/api/sync/{SEIRO}/hello", other).status_code == 400
    garbage = post(url, f"/api/sync/{SEIRO}/hello", b"\x00garbage")
    assert garbage.status_code == 400 and isinstance(decode(garbage.content), Refusal)
    huge = post(url, f"/api/sync/{SEIRO}/exchange", b"x" * (64 * 1024 * 1024 + 1))
    assert huge.status_code == 413
    assert httpx.get(url + f"/api/sync/{SEIRO}/hello").status_code == 405


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - start


async def _await(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def test_with_the_hub_stopped_box_a_reaches_box_b_directly_and_later_the_hub_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "hub"
    data.mkdir()
    hub_port, a_port, b_port = free_port(), free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    fast = {
        "pull_interval_s": 0.5,
        "watch_interval_s": 0.1,
        "push_delay_s": 0.05,
        "backoff_initial_s": 0.2,
        "backoff_max_s": 1.0,
    }
    a = agent(hub_url, peers=(f"http://127.0.0.1:{b_port}",), listen=("127.0.0.1", a_port), **fast)
    b = agent(hub_url, peers=(f"http://127.0.0.1:{a_port}",), listen=("127.0.0.1", b_port), **fast)
    connect_peers(a, b)
    enrol(data, a, b)
    a.replica.open_town(ring(SEIRO))
    b.replica.open_town(ring(SEIRO))

    async def scenario() -> None:
        await a.start()
        await b.start()
        try:
            a.replica.edit(SEIRO, [block("b7", reason="stalking")])
            a.notify_local_change()
            await _await(lambda: bool(b.replica.records(SEIRO, "blocks", "support_blocks")))
            assert b.replica.records(SEIRO, "blocks", "support_blocks") == {
                "b7": {"reason": "stalking"}
            }
            assert a.peers[hub_url].failures > 0  # the hub is down: backing off
            # The hub comes back: it gets the edit, once, from whichever box is first.
            with _hub(data, hub_port):
                await _await(
                    lambda: (
                        _hub_count(data) == 1
                        and a.peers[hub_url].failures == 0
                        and b.peers[hub_url].failures == 0
                    )
                )
                await asyncio.sleep(1.0)  # both boxes sync again: still one blob
                assert _hub_count(data) == 1
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


@contextlib.contextmanager
def _hub(data: Path, port: int) -> Iterator[None]:
    """The hub app on a given loopback port, in a thread (it must come back where the
    boxes expect it)."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(data), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait(lambda: server.started or not thread.is_alive())
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _hub_count(data: Path) -> int:
    storage = SqliteStorage(data / "hub.db")
    try:
        return len(storage.load_range((SEIRO, "log")))
    finally:
        storage.close()


def test_a_relay_box_forwards_a_town_it_cannot_read_and_holds_no_plaintext(
    hub: tuple[Path, str], tmp_path: Path, small_exports: list[TownExport]
) -> None:
    data, url = hub
    izumozaki = next(e for e in small_exports if e.town.code == IZUMOZAKI)
    residents = izumozaki.residents[:40]
    writer, reader = agent(url), agent(url)
    relay_dir = tmp_path / "relay"
    relay = SyncAgent(
        SqliteStorage(relay_dir / "replica.db"),
        AgentConfig(SEIRO, hub_url=url, towns=(SEIRO, IZUMOZAKI)),
    )
    relay.replica.open_town(ring(SEIRO))  # its own town only: Izumozaki stays sealed
    enrol(data, writer, reader, relay)
    writer.replica.open_town(ring(IZUMOZAKI))
    writer.replica.edit(
        IZUMOZAKI,
        [Upsert("residents", r.id, to_record(r), to_record(r)) for r in residents],
    )
    writer.sync_peer(url)
    relay.sync_peer(url)
    assert relay.replica.log.count(IZUMOZAKI) > 0
    assert IZUMOZAKI not in relay.replica.registries and relay.replica.flags == []
    for ref in relay.replica.log.refs(IZUMOZAKI):
        with pytest.raises(BlobDecryptError):
            open_blob(relay.replica.log.load(ref), ring(SEIRO), identity.lookup())
    # The hub's copy is gone: the reader gets the town from the relay's peer port alone.
    with serve(Starlette(routes=sync_routes(lambda request: relay.service))) as relay_url:
        enrol_peer(relay.storage, reader.identity.writer_id)
        reader.replica.open_town(ring(IZUMOZAKI))
        reader.sync_peer(relay_url)
    people = {
        rid: rec["name"]
        for name in reader.replica.registries[IZUMOZAKI].documents
        for rid, rec in reader.replica.records(IZUMOZAKI, name, "residents").items()
    }
    assert people == {r.id: r.name for r in residents}
    relay.storage.close()  # type: ignore[attr-defined]
    assert scan(relay_dir, residents) == []
    # The scan can fail: the same names written in the clear are found.
    (relay_dir / "leak.txt").write_text(residents[0].name)
    assert scan(relay_dir, residents) != []
