"""Helpers for the discovery tests: enrol a box, give it TLS files, and run an in-process
"node" (LanDiscovery + its HTTPS identity server) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from nacl.signing import SigningKey, VerifyKey
from servers import free_port
from starlette.applications import Starlette
from starlette.routing import Route

from edge.discovery import DiscoverySettings, Journal, LanDiscovery, MemoryQueues
from edge.identity_api import KEY_FILE, BoxIdentity, write_enrolment
from edge.peers import VerifiedPeer
from edge.tls import ServerFiles, create_ca, issue_server_cert, write_server_files
from shared.crypto import Certificate, FederationRoot, issue_box_certificate

FAST = {  # liveness for tests: a vanished peer is gone within ~3 s
    "liveness_interval_s": 0.5,
    "liveness_timeout_s": 1.0,
    "liveness_failures": 2,
    "recheck_s": 2.0,
}


def box_key(data_dir: Path) -> SigningKey:
    """The box key as edge/app.py keeps it (raw seed, 0600)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    if not path.exists():
        path.write_bytes(bytes(SigningKey.generate()))
        path.chmod(0o600)
    return SigningKey(path.read_bytes())


def enrol(
    data_dir: Path, root: FederationRoot, box_id: str, town: str, *, days: float = 30
) -> Certificate:
    """What the key ceremony does for a box: certify its key, install the certificate."""
    key = box_key(data_dir)
    now = datetime.now(UTC)
    cert = issue_box_certificate(
        root,
        box_id,
        town=town,
        sealing_key=key.to_curve25519_private_key().public_key,
        verify_key=key.verify_key,
        issued_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=days),
    )
    write_enrolment(data_dir, cert)
    return cert


def tls_files(directory: Path, addresses: list[str]) -> ServerFiles:
    ca_cert, ca_key = create_ca()
    (directory / "ca.crt").parent.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(ca_cert)
    return write_server_files(directory, *issue_server_cert(ca_cert, ca_key, [], addresses))


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Node:
    name: str
    box_id: str
    data: Path
    lan: LanDiscovery
    server: _Server
    serving: asyncio.Task[None]
    queues: MemoryQueues
    verified: list[VerifiedPeer] = field(default_factory=list)
    gone: list[VerifiedPeer] = field(default_factory=list)

    def state_of(self, box_id: str) -> str | None:
        assert self.lan.monitor is not None
        for peer in self.lan.monitor.peers.values():
            if peer.hint.box == box_id:
                return peer.state.value
        return None

    async def pull_the_cable(self) -> None:
        """Stop answering without an mDNS goodbye (as a SIGKILL or a pulled cable)."""
        self.server.should_exit = True
        await self.serving

    async def stop(self) -> None:
        await self.lan.stop()
        if not self.serving.done():
            self.server.should_exit = True
            await self.serving


async def start_node(
    tmp: Path,
    name: str,
    town: str,
    *,
    pin: VerifyKey,
    root: FederationRoot | None,
    settings: dict[str, Any] | None = None,
    routes: Callable[[str], list[Route]] | None = None,
) -> Node:
    """A box on 127.0.0.1: enrolled by `root` (None: not enrolled), trusting `pin`;
    `routes(box_id)` adds endpoints to its HTTPS server."""
    data = tmp / name
    box_id = f"{name}-{town}"
    box_key(data)
    if root is not None:
        enrol(data, root, box_id, town)
    tls = tls_files(data / "tls", ["127.0.0.1"])
    port = free_port()
    options: dict[str, Any] = {"name": f"{name} 連携ボックス", **FAST, **(settings or {})}
    config = DiscoverySettings(
        interfaces=("127.0.0.1",),
        port=port,
        tls_cert=tls.cert,
        federation_root=bytes(pin).hex(),
        **options,
    )
    identity = BoxIdentity.load(data, box_id, town, name=config.name, tls_cert=config.tls_cert)
    queues = MemoryQueues()
    lan = LanDiscovery(
        config,
        identity,
        clock=lambda: datetime.now(UTC),
        journal=Journal(data / "lan-journal.jsonl"),
        queues=queues,
    )
    server = _Server(
        uvicorn.Config(
            Starlette(routes=[*lan.routes, *(routes(box_id) if routes else [])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(tls.cert),
            ssl_keyfile=str(tls.key),
        )
    )
    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        assert not serving.done(), "identity server did not start"
        await asyncio.sleep(0.02)
    node = Node(name, box_id, data, lan, server, serving, queues)

    async def verified(peer: VerifiedPeer) -> None:
        node.verified.append(peer)

    async def gone(peer: VerifiedPeer) -> None:
        node.gone.append(peer)

    await lan.start(on_verified=verified, on_gone=gone)
    return node


async def until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Wait for `condition`; returns the seconds it took (generous time-outs only)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started
