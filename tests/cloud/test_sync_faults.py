"""The fault proxy, and sync through it: drops, duplicated (replayed) requests, delays,
reordering and cut connections between a box and the hub end in the same state, with no
duplicate and no damaged store."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import httpx
import pytest
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloud.app import create_app
from cloud.faultproxy import FaultProxy, Faults, ProxyError
from cloud.sync_api import enrol_peer
from edge.sync_agent import AgentConfig, SyncAgent
from shared.crypto import KeyRing, TownKeys
from shared.registry import Upsert
from shared.storage import MemoryStorage, SqliteStorage
from shared.sync.errors import SyncError
from shared.sync.log import BlobLog
from shared.sync.protocol import Limits

SEIRO = "15307"
KEYS = KeyRing(SEIRO, [TownKeys.generate(SEIRO)])


def counting_app() -> tuple[Starlette, list[bytes]]:
    seen: list[bytes] = []

    async def echo(request: Request) -> Response:
        body = await request.body()
        seen.append(body)
        return Response(body * 1000)

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])]), seen


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_the_proxy_only_joins_loopback_addresses() -> None:
    with pytest.raises(ProxyError):
        FaultProxy("192.0.2.1", 80)
    with pytest.raises(ProxyError):
        FaultProxy("127.0.0.1", 80, listen_host="0.0.0.0")
    # a namespace LAN the caller made widens it to that network only, and only if private
    lab = ipaddress.ip_network("10.231.7.0/24")
    FaultProxy("10.231.7.2", 80, listen_host="10.231.7.1", lab=lab)
    with pytest.raises(ProxyError):
        FaultProxy("10.231.8.2", 80, listen_host="10.231.7.1", lab=lab)
    with pytest.raises(ProxyError):
        FaultProxy("198.51.100.1", 80, lab=ipaddress.ip_network("8.8.8.0/24"))


def test_the_proxy_forwards_duplicates_drops_and_cuts_as_told() -> None:
    app, seen = counting_app()
    with serve(app) as url, FaultProxy("127.0.0.1", _port(url)).running() as proxy:
        assert httpx.post(proxy.url + "/echo", content=b"a").content == b"a" * 1000
        proxy.faults = Faults(duplicate=1.0)
        assert httpx.post(proxy.url + "/echo", content=b"b").content == b"b" * 1000
        time.sleep(0.2)
        assert seen.count(b"b") == 2  # the request reached the server twice
        proxy.faults = Faults(drop=1.0)
        with pytest.raises(httpx.HTTPError):
            httpx.post(proxy.url + "/echo", content=b"c")
        assert b"c" not in seen
        proxy.faults = Faults(cut_response=1.0)
        with pytest.raises(httpx.HTTPError):
            httpx.post(proxy.url + "/echo", content=b"d" * 10)
        proxy.faults = Faults(down=True)
        with pytest.raises(httpx.HTTPError):
            httpx.post(proxy.url + "/echo", content=b"e")
        proxy.faults = Faults(delay_s=0.2, reorder=1.0, hold_s=0.2)
        assert httpx.post(proxy.url + "/echo", content=b"f").content == b"f" * 1000
        assert proxy.stats.duplicated == 1 and proxy.stats.dropped == 1
        assert proxy.stats.cut_responses == 1 and proxy.stats.refused == 1
        assert proxy.stats.reordered == 1


def test_raw_mode_pipes_bytes_and_can_cut() -> None:
    app, _ = counting_app()
    with serve(app) as url, FaultProxy("127.0.0.1", _port(url), mode="raw").running() as proxy:
        assert httpx.post(proxy.url + "/echo", content=b"r").content == b"r" * 1000
        proxy.faults = Faults(cut_request=1.0)
        with pytest.raises(httpx.HTTPError):
            httpx.post(proxy.url + "/echo", content=b"s" * 10_000)


def test_sync_through_a_hostile_network_converges_without_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    data.mkdir()
    limits = Limits(batch_blobs=3)
    boxes = []
    for _ in range(2):
        config = AgentConfig(SEIRO, hub_url="unused", towns=(SEIRO,), limits=limits)
        box = SyncAgent(MemoryStorage(), config)
        box.replica.shards = 2
        box.replica.open_town(KEYS)
        boxes.append(box)
    storage = SqliteStorage(data / "hub.db")
    for box in boxes:
        enrol_peer(storage, box.identity.writer_id)
    storage.close()
    faults = Faults(
        drop=0.15,
        duplicate=0.3,
        delay_s=0.01,
        reorder=0.2,
        hold_s=0.05,
        cut_request=0.1,
        cut_response=0.1,
    )
    with serve(create_app(data)) as url:
        proxy = FaultProxy("127.0.0.1", _port(url), seed=11, faults=faults)
        with proxy.running():
            for round_ in range(6):
                for index, box in enumerate(boxes):
                    box.replica.edit(
                        SEIRO,
                        [Upsert("households", f"h{round_}-{index}", {"n": round_}, {"n": round_})],
                    )
                    for _ in range(50):  # each attempt may die on a fault; bounded
                        try:
                            box.sync_peer(proxy.url)
                            break
                        except (httpx.HTTPError, SyncError):
                            continue
                    else:
                        raise AssertionError("sync never got through")
            proxy.faults = Faults()
            for box in boxes:
                box.sync_peer(proxy.url)
        assert proxy.stats.duplicated and proxy.stats.dropped and proxy.stats.cut_responses
    a, b = boxes
    assert a.replica.log.have([SEIRO]) == b.replica.log.have([SEIRO])
    assert a.replica.log.count(SEIRO) == 12
    for name in a.replica.registries[SEIRO].documents:
        assert a.replica.records(SEIRO, name, "households") == b.replica.records(
            SEIRO, name, "households"
        )
    assert a.replica.pending() == {} and b.replica.pending() == {}
    hub = SqliteStorage(data / "hub.db")
    log = BlobLog(hub)
    assert log.count(SEIRO) == 12 and log.verify_all() == [] and log.conflicts == []
    hub.close()
