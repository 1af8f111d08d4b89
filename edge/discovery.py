"""LAN discovery with mDNS/DNS-SD (python-zeroconf): boxes, visiting devices and printers
find each other with no configuration, on the interfaces the town chose (BRIEF §3).

What goes on the wire — advertisements carry identity *hints* only:

    <friendly name>._renkei._tcp.local.   port = the box's HTTPS port (API, /api/identity)
    <friendly name>._https._tcp.local.    the same port: the clerks' web UI
        TXT  box=<box id>  town=<code>  fp=<SHA-256 of the enrolment certificate>  pv=1
             (https: path=/); every entry under 255 bytes, checked before registering
    host  renkei-<box id>.local.  A = the IPv4 addresses of the chosen interfaces

The friendly name is Japanese, e.g. 「聖籠町役場 連携ボックス」. There is no `_http._tcp`:
the box serves HTTPS only (secure cookies). The box browses `_renkei._tcp` (peers:
edge/peers.py verifies each and only a verified one is handed on — discovery never grants
access) and `_ipp._tcp` / `_ipps._tcp` (printers, offered as CUPS queues through the
`PrinterQueues` seam: `lpadmin -p NAME -E -v ipps://addr:port/rp -m everywhere`).

One `Mdns` (one AsyncZeroconf) per process, created and closed by the composition root
(edge/app.py's lifespan, through `LanDiscovery.start/stop`). It is always bound to
explicit addresses: an empty interface list means discovery is OFF, never "everywhere".

Configuration: `BoxConfig.discovery_interfaces`, or `discovery.json` in the box's data
folder (docs/discovery.md):

    {"interfaces": ["enp2s0", "10.1.2.3"],     names or IPv4 addresses; [] = off
     "port": 8443,                             the HTTPS port the box serves on
     "tls_cert": "/etc/renkei/tls/server.crt", bound into the identity proof
     "federation_root": "<64 hex>",            the root's Ed25519 verify key (the pin)
     "ca_file": "...", "name": "...", "lpadmin": "lpadmin",
     "printer_queues": true,                   offer printers found as CUPS queues
     "printers_allowed": ["聖籠町役場 2階 複合機", "<printer UUID>"],   [] = any printer
     "liveness_interval_s": 8, "liveness_timeout_s": 4, "liveness_failures": 2,
     "revocation_interval_s": 30}              how often to ask for a newer revocation list

Events (discovered, verified, unknown, refused, gone, handed_over, printer_queue, ...) go
to `lan-journal.jsonl` in the data folder for the IT staff, and to GET /api/lan.

Errors: `DiscoveryError` (bad configuration, a TXT entry too long, an interface without
an IPv4 address); `PrinterQueueError` (lpadmin failed). The box keeps serving clerks when
discovery cannot start: the error is logged and shown in /api/lan.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import ifaddr
from nacl.signing import VerifyKey
from starlette.routing import Route
from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge.identity_api import PROTOCOL, BoxIdentity, SyncInfo, identity_routes
from edge.peers import (
    Liveness,
    PeerCallback,
    PeerMonitor,
    PeerVerifier,
    VerifiedPeer,
    _nothing,
    offer_to_agent,
    withdraw_from_agent,
)

if TYPE_CHECKING:
    from edge.app import Box
    from edge.sync_agent import SyncAgent

log = logging.getLogger(__name__)

RENKEI = "_renkei._tcp.local."
HTTPS = "_https._tcp.local."
IPP = "_ipp._tcp.local."
IPPS = "_ipps._tcp.local."
SETTINGS_FILE = "discovery.json"
JOURNAL_FILE = "lan-journal.jsonl"
JOURNAL_MAX_BYTES = 1_000_000
MIN_REVOCATION_INTERVAL_S = 1.0
MAX_TXT_ENTRY = 255  # one DNS character-string


class DiscoveryError(Exception):
    """Discovery cannot be set up as configured (see the module docstring)."""


class PrinterQueueError(Exception):
    """A printer could not be set up as a CUPS queue."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    interfaces: tuple[str, ...] = ()
    port: int = 8701
    name: str = ""
    tls_cert: Path | None = None
    federation_root: str = ""
    ca_file: Path | None = None
    printer_queues: bool = True
    printers_allowed: tuple[str, ...] = ()  # instance names or UUIDs; () = every printer
    lpadmin: str = "lpadmin"
    liveness_interval_s: float = 8.0
    liveness_timeout_s: float = 4.0
    liveness_failures: int = 2
    recheck_s: float = 30.0
    revocation_interval_s: float = 30.0  # edge/revocations.py: hub, then verified peers

    def __post_init__(self) -> None:
        # A shorter round would have every box of the LAN hammer the hub and its peers.
        if not self.revocation_interval_s >= MIN_REVOCATION_INTERVAL_S:
            raise DiscoveryError(
                f"revocation_interval_s must be at least {MIN_REVOCATION_INTERVAL_S:g} s"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.interfaces)

    @property
    def liveness(self) -> Liveness:
        return Liveness(self.liveness_interval_s, self.liveness_failures, self.recheck_s)

    @property
    def worst_case_gone_s(self) -> float:
        return self.liveness.worst_case_s(self.liveness_timeout_s)

    def root_key(self) -> VerifyKey:
        try:
            raw = bytes.fromhex(self.federation_root)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise DiscoveryError(
                "discovery.json: federation_root must be the federation root's Ed25519 "
                "verify key (64 hex digits); without it no peer can be verified"
            )
        return VerifyKey(raw)

    @classmethod
    def load(cls, data_dir: Path, interfaces: Sequence[str] = ()) -> DiscoverySettings:
        """`discovery.json` if present; `interfaces` (BoxConfig) override its list."""
        path = data_dir / SETTINGS_FILE
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DiscoveryError(f"{path}: not readable JSON ({exc})") from exc
            if not isinstance(data, dict):
                raise DiscoveryError(f"{path}: not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DiscoveryError(f"{path}: unknown settings {sorted(unknown)}")
        if interfaces:
            data["interfaces"] = list(interfaces)
        try:
            values: dict[str, Any] = {
                **data,
                "interfaces": tuple(str(i) for i in data.get("interfaces", ())),
                "printers_allowed": tuple(str(p) for p in data.get("printers_allowed", ())),
            }
            for name in ("tls_cert", "ca_file"):
                if data.get(name):
                    values[name] = Path(data[name])
            return cls(**values)
        except TypeError as exc:
            raise DiscoveryError(f"{path}: {exc}") from exc


def resolve_interfaces(interfaces: Sequence[str]) -> list[str]:
    """IPv4 addresses for the configured interfaces (names like "enp2s0", or addresses).
    Never all interfaces: each entry must resolve, or DiscoveryError."""
    adapters = {a.nice_name: a for a in ifaddr.get_adapters()}
    addresses: list[str] = []
    for entry in interfaces:
        try:
            addresses.append(str(ipaddress.IPv4Address(entry)))
            continue
        except ValueError:
            pass
        adapter = adapters.get(entry)
        found = [str(ip.ip) for ip in adapter.ips if ip.is_IPv4] if adapter else []
        if not found:
            raise DiscoveryError(f"interface {entry!r} has no IPv4 address (or does not exist)")
        addresses += found
    return list(dict.fromkeys(addresses))


# ---------------------------------------------------------------------------- records


def txt_records(properties: Mapping[str, str]) -> dict[str, str]:
    """Checked TXT properties: every key=value entry must fit one DNS string."""
    for key, value in properties.items():
        size = len(key.encode()) + 1 + len(value.encode())
        if size > MAX_TXT_ENTRY:
            raise DiscoveryError(f"TXT entry {key!r} is {size} bytes; at most {MAX_TXT_ENTRY}")
    return dict(properties)


def host_label(box_id: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", box_id.lower()).strip("-")[:40] or "box"
    return f"renkei-{slug}"


def service_infos(identity: BoxIdentity, port: int, addresses: Sequence[str]) -> list[ServiceInfo]:
    """The box's two advertisements (identity hints only)."""
    name = identity.name
    if len(name.encode()) > 63:
        raise DiscoveryError(f"instance name {name!r} is over 63 bytes")
    hints = txt_records(
        {
            "box": identity.box_id,
            "town": identity.town,
            "fp": identity.fingerprint,
            "pv": str(PROTOCOL),
        }
    )
    server = f"{host_label(identity.box_id)}.local."
    packed = [socket.inet_aton(a) for a in addresses]
    return [
        ServiceInfo(
            RENKEI, f"{name}.{RENKEI}", port=port, properties=hints, server=server, addresses=packed
        ),
        ServiceInfo(
            HTTPS,
            f"{name}.{HTTPS}",
            port=port,
            properties=txt_records({"path": "/", "box": identity.box_id}),
            server=server,
            addresses=packed,
        ),
    ]


def decode_txt(properties: Mapping[bytes, bytes | None]) -> dict[str, str]:
    return {
        k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
        for k, v in properties.items()
    }


# ---------------------------------------------------------------------------- mDNS


class Mdns:
    """The process's one AsyncZeroconf, bound to the chosen IPv4 addresses only."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise DiscoveryError("no interface chosen: mDNS is never used on all interfaces")
        self.addresses = list(addresses)
        self._zc: AsyncZeroconf | None = None
        self._registered: list[ServiceInfo] = []
        self._browsers: list[AsyncServiceBrowser] = []

    @property
    def zeroconf(self) -> Zeroconf:
        if self._zc is None:
            raise DiscoveryError("mDNS is not started")
        return self._zc.zeroconf

    async def start(self) -> None:
        self._zc = AsyncZeroconf(interfaces=self.addresses, ip_version=IPVersion.V4Only)

    async def register(self, infos: Sequence[ServiceInfo]) -> None:
        """Probe, then announce (≈1.6 s, the services together); a name already taken
        gets a suffix."""
        assert self._zc is not None
        pending = [await self._zc.async_register_service(i, allow_name_change=True) for i in infos]
        await asyncio.gather(*pending)
        self._registered += infos

    def browse(self, types: list[str], handler: Callable[..., None]) -> None:
        self._browsers.append(AsyncServiceBrowser(self.zeroconf, types, handlers=[handler]))

    async def resolve(self, type_: str, name: str, timeout_ms: int = 3000) -> ServiceInfo | None:
        info = AsyncServiceInfo(type_, name)
        if not await info.async_request(self.zeroconf, timeout_ms):
            return None
        return info

    async def stop(self) -> None:
        """Cancel browsing, send goodbyes for what was registered, close the sockets."""
        if self._zc is None:
            return
        for browser in self._browsers:
            await browser.async_cancel()
        with contextlib.suppress(Exception):
            await self._zc.async_unregister_all_services()
        await self._zc.async_close()
        self._zc = None
        self._browsers.clear()
        self._registered.clear()


# ---------------------------------------------------------------------------- printers


class PrinterQueues(Protocol):
    """The print-queue seam: CUPS in production, a dict in tests."""

    async def add(self, queue: str, uri: str, description: str) -> None: ...

    async def remove(self, queue: str) -> None: ...

    async def list(self) -> dict[str, str]:
        """queue name -> device URI"""
        ...


class MemoryQueues:
    def __init__(self) -> None:
        self.queues: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}

    async def add(self, queue: str, uri: str, description: str) -> None:
        if not uri.startswith(("ipp://", "ipps://")):
            raise PrinterQueueError(f"unsupported printer URI {uri!r}")
        self.queues[queue] = uri
        self.descriptions[queue] = description

    async def remove(self, queue: str) -> None:
        self.queues.pop(queue, None)
        self.descriptions.pop(queue, None)

    async def list(self) -> dict[str, str]:
        return dict(self.queues)


class LpadminQueues:
    """CUPS queues through `lpadmin … -m everywhere` (the scheduler asks the printer for
    its capabilities, so it must reach the printer's address). The CUPS server is the
    usual one, or `CUPS_SERVER` in the environment; `lpadmin` may be another program."""

    def __init__(
        self, lpadmin: str = "lpadmin", lpstat: str = "lpstat", timeout_s: float = 60.0
    ) -> None:
        self.lpadmin = lpadmin
        self.lpstat = lpstat
        self.timeout_s = timeout_s

    async def _run(self, *args: str) -> str:
        env = {**os.environ, "LC_ALL": "C"}
        try:
            process = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
            )
        except OSError as exc:
            raise PrinterQueueError(f"cannot run {args[0]}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout_s)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise PrinterQueueError(f"{args[0]} timed out after {self.timeout_s} s") from exc
        if process.returncode != 0:
            message = (err or out).decode(errors="replace").strip()
            raise PrinterQueueError(f"{' '.join(args[:3])}… failed: {message}")
        return out.decode(errors="replace")

    async def add(self, queue: str, uri: str, description: str) -> None:
        await self._run(
            self.lpadmin,
            "-p",
            queue,
            "-E",
            "-v",
            uri,
            "-m",
            "everywhere",
            "-D",
            description,
            "-L",
            "LAN (mDNS)",
        )

    async def remove(self, queue: str) -> None:
        await self._run(self.lpadmin, "-x", queue)

    async def list(self) -> dict[str, str]:
        try:
            out = await self._run(self.lpstat, "-v")
        except PrinterQueueError as exc:
            if "No destinations" in str(exc):
                return {}
            raise
        found = re.findall(r"^device for (\S+): (\S+)$", out, flags=re.MULTILINE)
        return dict(found)


def queue_name(instance: str) -> str:
    """A CUPS-safe queue name for an advertised printer (ASCII; a hash keeps Japanese
    names apart)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", instance).strip("_")[:40]
    digest = hashlib.blake2b(instance.encode(), digest_size=4).hexdigest()
    return f"renkei-{slug}-{digest}" if slug else f"renkei-{digest}"


@dataclass
class Printer:
    instance: str
    uuid: str = ""
    uris: dict[str, str] = field(default_factory=dict)  # scheme -> URI
    queue: str = ""
    queue_uri: str = ""
    error: str = ""
    present: bool = True

    def preferred(self) -> list[str]:
        """ipps before ipp: resident documents should not cross the LAN in clear."""
        return [self.uris[s] for s in ("ipps", "ipp") if s in self.uris]

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "uuid": self.uuid,
            "uris": self.uris,
            "queue": self.queue,
            "uri": self.queue_uri,
            "error": self.error,
            "present": self.present,
        }


def printer_uri(scheme: str, info: ServiceInfo) -> str | None:
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not addresses or not info.port:
        return None
    rp = decode_txt(info.properties).get("rp", "").strip("/")
    return f"{scheme}://{addresses[0]}:{info.port}/{rp}"


def instance_of(name: str, type_: str) -> str:
    return name[: -len(type_) - 1] if name.endswith("." + type_) else name


# ---------------------------------------------------------------------------- journal


class Journal:
    """LAN events as JSON lines (`lan-journal.jsonl`), and the last ones in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)

    def __call__(self, event: str, **details: object) -> None:
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "mono": round(time.monotonic(), 4),
            "event": event,
            **details,
        }
        self.recent.append(entry)
        if self.path is None:
            return
        try:
            if self.path.exists() and self.path.stat().st_size > JOURNAL_MAX_BYTES:
                self.path.replace(self.path.with_suffix(".jsonl.1"))
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:
            log.warning("LAN journal not written: %s", exc)


def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------------------- composition


def sync_info_of(agent: SyncAgent) -> Callable[[], SyncInfo]:
    def info() -> SyncInfo:
        with agent.service.lock:
            blobs = agent.replica.log
            holdings = {town: blobs.count(town) for town in blobs.towns()}
        port = agent.config.listen[1] if agent.config.listen else None
        return SyncInfo(agent.identity.writer_id, port, holdings)

    return info


class LanDiscovery:
    """Advertise this box, watch for peers and printers. Built by the composition root,
    which calls `start` and `stop`; with no interface chosen it only serves /api/identity."""

    def __init__(
        self,
        settings: DiscoverySettings,
        identity: BoxIdentity,
        *,
        clock: Callable[[], datetime],
        journal: Journal | None = None,
        queues: PrinterQueues | None = None,
        default_name: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.clock = clock
        self.journal = journal or Journal(None)
        if queues is None and settings.printer_queues:
            queues = LpadminQueues(settings.lpadmin)
        self.queues = queues
        self._default_name = default_name
        self.mdns: Mdns | None = None
        self.monitor: PeerMonitor | None = None
        self.revoked: Callable[[VerifyKey], str | None] | None = None  # edge/revocations.py
        self.printers: dict[str, Printer] = {}
        self.error = ""
        self.advertised = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._printer_lock = asyncio.Lock()
        self._own: set[str] = set()  # our own service names (not peers)

    @classmethod
    def for_box(cls, box: Box) -> LanDiscovery:
        """From the box's configuration: `BoxConfig.discovery_interfaces` or discovery.json."""
        config = box.config
        try:
            settings = DiscoverySettings.load(config.data_dir, config.discovery_interfaces)
            error = ""
        except DiscoveryError as exc:
            settings, error = DiscoverySettings(), str(exc)
        identity = BoxIdentity.load(
            config.data_dir,
            config.host_box,
            config.town_code,
            name=settings.name or config.host_box,
            tls_cert=settings.tls_cert,
        )

        def default_name() -> str:
            town = box.replica.town_name(config.town_code)
            return (
                f"{town}役場 連携ボックス" if town != config.town_code else f"連携ボックス {town}"
            )

        lan = cls(
            settings,
            identity,
            clock=lambda: datetime.fromtimestamp(box.clock.now(), UTC),
            journal=Journal(config.data_dir / JOURNAL_FILE),
            default_name=default_name,
        )
        lan.error = error
        return lan

    @property
    def routes(self) -> list[Route]:
        return identity_routes(self.identity, self.view)

    def view(self) -> dict[str, Any]:
        return {
            "enabled": self.mdns is not None,
            "error": self.error,
            "name": self.identity.name,
            "addresses": self.mdns.addresses if self.mdns else [],
            "enrolled": self.identity.certificate is not None,
            "peers": self.monitor.snapshot() if self.monitor else [],
            "printers": [p.to_json() for p in self.printers.values()],
            "events": list(self.journal.recent)[-50:],
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(
        self,
        agent: SyncAgent | None = None,
        *,
        on_verified: PeerCallback | None = None,
        on_gone: PeerCallback | None = None,
    ) -> None:
        on_refused: PeerCallback | None = None
        if agent is not None:
            self.identity.sync = sync_info_of(agent)
            on_verified = on_verified or offer_to_agent(agent)
            on_refused = withdraw_from_agent(agent)
        if not self.settings.name and self._default_name is not None:
            self.identity.name = self._default_name()
        if self.error:
            log.error("LAN discovery not started: %s", self.error)
            return
        if not self.settings.enabled:
            log.info("LAN discovery is off (no interface chosen)")
            return
        try:
            addresses = resolve_interfaces(self.settings.interfaces)
            infos = service_infos(self.identity, self.settings.port, addresses)
            root = self.settings.root_key()
        except DiscoveryError as exc:
            self.error = str(exc)
            log.error("LAN discovery not started: %s", exc)
            return
        if any(ipaddress.IPv4Address(a).is_loopback for a in addresses):
            log.warning("LAN discovery on loopback: fine for tests, useless on a real LAN")
        if self.identity.certificate is None:
            log.warning("this box is not enrolled: peers will list it as an unknown device")
        verifier = PeerVerifier(
            root,
            clock=self.clock,
            ca_file=self.settings.ca_file,
            timeout_s=self.settings.liveness_timeout_s,
            revoked=self.revoked,
        )
        self.monitor = PeerMonitor(
            verifier,
            liveness=self.settings.liveness,
            on_verified=self._handing_over(on_verified),
            on_gone=self._withdrawing(on_gone),
            on_refused=on_refused or _nothing,
            journal=self.journal,
        )
        self.mdns = Mdns(addresses)
        self._own = {info.name for info in infos}
        await self.mdns.start()
        self._spawn(self._advertise(infos))
        self.mdns.browse([RENKEI], self._on_peer_change)
        self.mdns.browse([IPP, IPPS], self._on_printer_change)
        self.journal(
            "started",
            addresses=addresses,
            name=self.identity.name,
            box=self.identity.box_id,
            enrolled=self.identity.certificate is not None,
        )

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.monitor is not None:
            await self.monitor.stop()
        if self.mdns is not None:
            await self.mdns.stop()  # goodbyes: peers drop us at once
            self.journal("stopped")
        self.mdns = None

    # ------------------------------------------------------------------ internals

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _advertise(self, infos: list[ServiceInfo]) -> None:
        assert self.mdns is not None
        self.journal("advertising", services=[i.name for i in infos])
        await self.mdns.register(infos)
        self._own |= {info.name for info in infos}  # renamed if a name was taken
        self.advertised.set()
        self.journal("advertised", services=[i.name for i in infos])

    def _handing_over(self, callback: PeerCallback | None) -> PeerCallback:
        async def handed(peer: VerifiedPeer) -> None:
            if peer.box == self.identity.box_id:
                return  # our own advertisement, seen before we knew its final name
            self.journal(
                "handed_over",
                box=peer.box,
                town=peer.town,
                address=peer.address,
                sync_url=peer.sync_url,
                holdings=peer.holdings,
            )
            if callback is not None:
                await callback(peer)

        return handed

    def _withdrawing(self, callback: PeerCallback | None) -> PeerCallback:
        async def withdrawn(peer: VerifiedPeer) -> None:
            if callback is not None:
                await callback(peer)

        return withdrawn

    def _on_peer_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if self.monitor is None:
            return
        if name in self._own:
            return
        if state_change is ServiceStateChange.Removed:
            self.monitor.goodbye(name)
        else:
            self._spawn(self._resolve_peer(service_type, name))

    async def _resolve_peer(self, service_type: str, name: str) -> None:
        assert self.mdns is not None and self.monitor is not None
        info = await self.mdns.resolve(service_type, name)
        if info is None or not info.port:
            return
        if name in self._own:
            return
        txt = decode_txt(info.properties)
        addresses = sorted(info.parsed_addresses(IPVersion.V4Only))
        self.monitor.seen(name, addresses, info.port, txt)

    def _on_printer_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        instance = instance_of(name, service_type)
        if state_change is ServiceStateChange.Removed:
            printer = self.printers.get(instance)
            if printer is not None and printer.present:
                printer.present = False
                self.journal("printer_gone", instance=instance, queue=printer.queue)
        else:
            self._spawn(self._resolve_printer(service_type, name))

    async def _resolve_printer(self, service_type: str, name: str) -> None:
        assert self.mdns is not None
        info = await self.mdns.resolve(service_type, name)
        if info is None:
            return
        scheme = "ipps" if service_type == IPPS else "ipp"
        uri = printer_uri(scheme, info)
        if uri is None:
            return
        instance = instance_of(name, service_type)
        async with self._printer_lock:
            printer = self.printers.setdefault(instance, Printer(instance))
            printer.uuid = decode_txt(info.properties).get("UUID", "")
            new = printer.uris.get(scheme) != uri or not printer.present
            printer.uris[scheme] = uri
            printer.present = True
            if new:
                self.journal("printer_seen", instance=instance, uri=uri)
                await self._offer_printer(printer)

    async def _offer_printer(self, printer: Printer) -> None:
        """Set up (or upgrade to ipps) the printer's CUPS queue."""
        allowed = self.settings.printers_allowed
        if self.queues is None:
            return
        if allowed and printer.instance not in allowed and printer.uuid not in allowed:
            self.journal("printer_not_allowed", instance=printer.instance, uuid=printer.uuid)
            return
        if not printer.queue and sum(1 for p in self.printers.values() if p.queue) >= 32:
            self.journal("printer_not_offered", instance=printer.instance, reason="32 queues")
            return
        queue = printer.queue or queue_name(printer.instance)
        for uri in printer.preferred():
            if uri == printer.queue_uri:
                return  # already the best working URI
            try:
                await self.queues.add(queue, uri, printer.instance)
            except PrinterQueueError as exc:
                printer.error = str(exc)
                self.journal(
                    "printer_queue_failed",
                    instance=printer.instance,
                    queue=queue,
                    uri=uri,
                    error=str(exc),
                )
                log.warning("printer %r not set up with %s: %s", printer.instance, uri, exc)
                continue
            printer.queue, printer.queue_uri, printer.error = queue, uri, ""
            self.journal("printer_queue", instance=printer.instance, queue=queue, uri=uri)
            log.info("printer %r offered as CUPS queue %s (%s)", printer.instance, queue, uri)
            return
