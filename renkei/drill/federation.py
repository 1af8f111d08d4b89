"""A local federation of real processes for the drill: the hub, one box per town, a fault
proxy in front of the hub for each box, and one IPP printer per town hall.

    box 15307 ──▶ proxy ──┐
    box 15405 ──▶ proxy ──┼──▶ hub            (renkei hub, HTTP)
    box 15581 ──▶ proxy ──┘
    boxes ◀──▶ boxes                          (box↔box sync on their peer ports)

Where the machine allows (`network="auto"` or `"netns"`), the hub and each town hall get
a network namespace of their own on one LAN of the drill's making (renkei/netns.py): the
hub at .2 of a free private /24, each town's box and printer at .11, .12, .13 on the
ports an installation uses, the drill itself (the clerks' terminals, the fault proxies)
at .1 on a veth in the root namespace. Every request of the drill, every sync and print
goes over those addresses; the TLS certificates name them. The namespaces go with
`close` (and at exit). Otherwise (`"loopback"`) everything listens on 127.0.0.1. The
boxes are started exactly as an installation starts them (`renkei box … --tls`), each in its own
process group so that "the town hall is down" kills the box and its towns' workers at
once. What `renkei demo` already does is reused from it: the federation CA and server
certificates (`_issue_tls`), waiting for a process to answer (`_wait_ready`).

Set-up plays the key ceremony and the IT staff: synthetic towns are generated and
imported with the hub's custody, four clerks per town get passwords (a roster clerk who
travels, a second roster clerk, a supervisor, a deputy who signs activations), the
drill's federation root is pinned at the hub and certifies its enrolment key, and once
the hub answers each box is enrolled there with a one-time token as `renkei demo` does
(renkei/demo_enrolment.py); the boxes admit each other as LAN sync peers. Nothing here
changes how a box or the hub behaves.

Edits at the boxes (for the data-loss figure) are written by `EditWriter` into a box's
own store with the box's sync identity, as a town worker in that box would: the box has
no HTTP edit screen yet (intake comes with the UI issue), and the sync agent picks the
edits up from the store like any other local change.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renkei import netns
from renkei.drill.rows import TOWNS

SMALL_TOWNS = {"15307": 400, "15405": 200, "15581": 200}
# Where each town's clerks go: case 2 (hub up) and case 3 (hub down) use different hosts,
# so each case starts from a host that has never opened the stricken town.
HOSTS = {
    "15307": ("15405", "15581"),
    "15405": ("15581", "15307"),
    "15581": ("15307", "15405"),
}


NETWORKS = ("auto", "netns", "loopback")
NETNS_PREFIX = "rkd"  # the drill's namespaces: rkd-<pid>-hub, rkd-<pid>-15307, …
# In a namespace each part has the LAN to itself: the ports an installation uses.
HUB_PORT, BOX_PORT, PEER_PORT, PRINTER_PORT = 8700, 8701, 8702, 8631
LOOPBACK = "127.0.0.1"


class FederationError(Exception):
    """The local federation could not be set up or a process did not come back."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ClerkLogin:
    town: str
    login_id: str
    password: str
    name: str


@dataclass
class TownClerks:
    visitor: ClerkLogin  # on the emergency roster: travels to a partner town
    other: ClerkLogin  # on the roster too, but not named in the activations
    supervisor: ClerkLogin  # approves visitors' activations on this town's box
    deputy: ClerkLogin  # signs the town's activations (the representative's phone)
    deputy_keys: Any = None  # shared.crypto.ClerkKeys


@dataclass
class Subject:
    """A resident the drill asks documents for: alive, not under a 支援措置, and with a
    Moji_Joho variation sequence in the name where the town has one."""

    resident_id: str
    name: str
    kana: str
    ivs: bool
    extra: dict[str, str] = field(default_factory=dict)  # the form's document fields


@dataclass
class BoxProcess:
    town: str
    port: int
    peer_port: int
    data: Path
    tls: Path
    proxy: Any  # cloud.faultproxy.FaultProxy
    identity: Any  # shared.sync.identity.Identity
    process: subprocess.Popen[bytes] | None = None
    printer: Printer | None = None
    address: str = LOOPBACK  # the town hall LAN's address of the box (netns) or loopback
    name: str = ""  # box id, if not box-<town> (the portable node: laptop-<town>)
    lan_host: str = ""  # its host on the drill's LAN, if not the town hall's

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{self.peer_port}"

    @property
    def box_id(self) -> str:
        return self.name or f"box-{self.town}"

    @property
    def host(self) -> str:
        return self.lan_host or self.town


@dataclass
class Printer:
    """A town hall's printer: ippeveprinter keeping every job's document in its spool."""

    uri: str
    spool: Path
    process: subprocess.Popen[bytes]
    instance: str = ""  # the name it advertises; the boxes' CUPS queue derives from it


@dataclass
class LocalFederation:
    root: Path
    seed: int = 1
    short: bool = True
    say: Any = print
    env: dict[str, str] = field(default_factory=dict)
    network: str = "auto"  # NETWORKS: what was asked for
    network_used: str = ""  # "netns" or "loopback", decided by `prepare`
    network_note: str = ""  # why auto fell back to loopback; what was left behind
    lan: netns.Lan | None = None
    portable: tuple[str, ...] = ()  # towns whose box has a portable node (netns only)
    laptops: dict[str, BoxProcess] = field(default_factory=dict)
    carried: dict[str, Any] = field(default_factory=dict)  # town → portable.Carried
    hub_passphrase: str = ""
    hub_port: int = 0
    hub: subprocess.Popen[bytes] | None = None
    boxes: dict[str, BoxProcess] = field(default_factory=dict)
    clerks: dict[str, TownClerks] = field(default_factory=dict)
    subjects: dict[str, Subject] = field(default_factory=dict)
    # per town and document key (docs/counter.md): who the drill asks it for
    requests: dict[str, dict[str, Subject]] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)  # town → TownExport
    custody: Any = None
    ca_file: Path = Path()
    federation_root: Any = None  # shared.crypto.FederationRoot
    staged_tls: dict[str, Path] = field(default_factory=dict)  # box id → its TLS files
    printers_error: str = ""
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # ------------------------------------------------------------------ set-up

    @property
    def hub_url(self) -> str:
        return f"http://{self.address('hub')}:{self.hub_port}"

    def address(self, host: str) -> str:
        """Where a part of the federation listens: its namespace's LAN address, or
        loopback. "drill" is the drill process itself (terminals, fault proxies)."""
        if self.lan is None:
            return LOOPBACK
        if host == "drill":
            return self.lan.root_address
        return self.lan.addresses[host]

    def _network(self) -> None:
        """Decide loopback or namespaces; build the LAN (hub, one host per town)."""
        if self.network not in NETWORKS:
            raise FederationError(f"unknown network {self.network!r}: one of {NETWORKS}")
        reason = "" if self.network == "loopback" else netns.unavailable()
        if self.network == "netns" and reason:
            raise FederationError(f"--network netns: {reason}")
        if self.network == "loopback" or reason:
            self.network_used = "loopback"
            self.network_note = reason
            return
        try:
            netns.sweep(NETNS_PREFIX)  # a drill killed with SIGKILL could not clean up
            subnet = netns.free_subnet()
            hosts = {"hub": str(subnet[2])}
            hosts |= {code: str(subnet[11 + i]) for i, code in enumerate(TOWNS)}
            from renkei.drill.portable import host_name

            hosts |= {host_name(code): str(subnet[21 + TOWNS.index(code)])
                      for code in self.portable}  # fmt: skip
            self.lan = netns.Lan.create(NETNS_PREFIX, hosts, root_address=str(subnet[1]))
        except netns.NetnsError as exc:
            raise FederationError(str(exc)) from exc
        self.network_used = "netns"
        self.say(f"ネットワーク名前空間に連携網を作りました（{subnet}、訓練端末 {subnet[1]}）")

    def network_summary(self) -> dict[str, Any]:
        """For the report: which network was used, and where each part was."""
        lan = self.lan
        hosts = {} if lan is None else {
            name: {"namespace": lan.namespaces[name], "address": lan.addresses[name]}
            for name in lan.namespaces
        }  # fmt: skip
        return {
            "requested": self.network,
            "mode": self.network_used,
            "note": self.network_note,
            "drill": self.address("drill") if lan else LOOPBACK,
            "hub": self.hub_url if self.hub_port else "",
            "boxes": {code: box.url for code, box in self.boxes.items()},
            "hosts": hosts,
            "namespaces": [] if lan is None else list(lan.created),
            "links": [lan.root_link] if lan is not None and lan.root_link else [],
            "left": [] if lan is None else lan.leftovers(),
            "portable": [c.to_json() for c in self.carried.values()],
        }

    @property
    def hub_data(self) -> Path:
        return self.root / "hub"

    def prepare(self) -> None:
        """Generate and import the towns, provision clerks, enrol boxes, issue TLS."""
        from cloud.app import hub_db_path
        from cloud.custody import Custody
        from cloud.importer import import_export
        from cloud.synthetic import generate
        from renkei.commands.demo import _issue_tls
        from renkei.demo_enrolment import certify_hub
        from shared.crypto import FederationRoot
        from shared.export_csv import write_export
        from shared.storage import SqliteStorage
        from shared.sync.identity import Identity

        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self._network()
        self.say(
            f"合成データを生成しています（seed={self.seed}、{'短縮' if self.short else '実規模'}）"
        )
        exports = generate(self.seed, residents_override=SMALL_TOWNS if self.short else None)
        self.exports = {e.town.code: e for e in exports}
        export_dir = self.root / "export"
        write_export(exports, export_dir)
        self.hub_data.mkdir()
        self.custody = Custody.create()
        storage = SqliteStorage(hub_db_path(self.hub_data))
        try:
            report = import_export(export_dir, storage, custody=self.custody)
            if not report.ok:
                raise FederationError(report.summary())
            for code in TOWNS:
                self.clerks[code] = self._provision(storage, code)
                self.subjects[code] = self._subject(code)
                self.requests[code] = self._requests(code)
            self.hub_port = HUB_PORT if self.lan else free_port()
            for code in TOWNS:
                self.boxes[code] = self._box(code)
        finally:
            storage.close()
        passphrase = secrets.token_urlsafe(24)
        self.custody.save(self.hub_data, passphrase)
        self.hub_passphrase = passphrase  # the operator unseals the hub's keys at start
        box_urls = {code: box.url for code, box in self.boxes.items()}
        # the ceremony's USB stick: each box's TLS files, handed over at enrolment
        self.ca_file, staged = _issue_tls(self.root, box_urls, into=self.ceremony)
        self.staged_tls = {f"box-{code}": folder for code, folder in staged.items()}
        self.federation_root = FederationRoot.generate()
        root = self.federation_root
        certify_hub(self.hub_data, passphrase, root.verify_key, lambda: root)
        for code, box in self.boxes.items():
            box.tls = self.root / "boxes" / code / "tls"
            self._lan_peer(box, [b for b in self.boxes.values() if b is not box])
        if self.lan is not None:
            from renkei.drill import portable

            for code in self.portable:
                self.laptops[code] = portable.make(self, code)
        _ = Identity  # (imported for the type of BoxProcess.identity)

    def _provision(self, storage: Any, code: str) -> TownClerks:
        from renkei.commands.demo import _demo_password
        from shared import crypto
        from shared.model import Role

        rng = secrets.SystemRandom()
        clerks = self.exports[code].clerks
        plain = [c for c in clerks if c.on_roster and c.deputy_rank == 0
                 and Role.SUPERVISOR not in c.roles]  # fmt: skip
        supervisor = next(c for c in clerks if Role.SUPERVISOR in c.roles and c.deputy_rank == 0)
        deputy = next(c for c in sorted(clerks, key=lambda c: c.deputy_rank) if c.deputy_rank > 0)
        limits = crypto.INTERACTIVE if self.short else crypto.DEFAULT_KDF_LIMITS
        chosen = []
        for clerk in (plain[0], plain[1], supervisor, deputy):
            password = _demo_password(rng)
            self.custody.provision_clerk(storage, clerk, password, kdf_limits=limits)
            chosen.append(ClerkLogin(code, clerk.login_id, password, clerk.name))
        record = json.loads(storage.load((code, "credential", deputy.login_id)) or b"{}")
        keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), chosen[3].password)
        visitor, other, supervisor_login, deputy_login = chosen
        return TownClerks(visitor, other, supervisor_login, deputy_login, deputy_keys=keys)

    def _subject(self, code: str) -> Subject:
        export = self.exports[code]
        blocked = {p for b in export.support_blocks for p in b.protected_ids}
        alive = [r for r in export.residents if r.removal is None and r.id not in blocked]
        with_ivs = [r for r in alive if any(0xE0100 <= ord(ch) <= 0xE01EF for ch in r.name)]
        person = (with_ivs or alive)[0]
        return Subject(person.id, person.name, person.kana, bool(with_ivs))

    def _requests(self, code: str) -> dict[str, Subject]:
        """住民票 for the variation-sequence name; 納税証明書 (個人住民税) for a taxpayer
        with bills that year; 資格確認書 for a current NHI member without a マイナ保険証
        (who gets the 資格情報のお知らせ instead)."""
        from shared.model import TaxKind

        export = self.exports[code]
        blocked = {p for b in export.support_blocks for p in b.protected_ids}
        alive = {r.id: r for r in export.residents if r.removal is None and r.id not in blocked}
        chosen = {"juminhyo": self.subjects[code]}
        bills = sorted(
            ((i.fiscal_year, i.taxpayer_id) for i in export.installments
             if i.tax is TaxKind.RESIDENT and i.taxpayer_id in alive),
            reverse=True,
        )  # fmt: skip
        if bills:
            year, payer = bills[0]
            person = alive[payer]
            fields = {"fiscal_year": str(year), "tax_kind": TaxKind.RESIDENT.value}
            chosen["nozei"] = Subject(person.id, person.name, person.kana, False, fields)
        member = next((m for m in export.nhi_members if m.lost is None and m.resident_id in alive
                       and not m.has_my_number_insurance),
                      None)  # fmt: skip
        if member is not None:
            person = alive[member.resident_id]
            chosen["shikaku_kakunin"] = Subject(person.id, person.name, person.kana, False)
        return chosen

    def _box(self, code: str) -> BoxProcess:
        from cloud.faultproxy import FaultProxy
        from shared.sync.identity import Identity

        if self.lan is None:
            proxy = FaultProxy(LOOPBACK, self.hub_port, seed=int(code))
            port, peer_port = free_port(), free_port()
        else:  # the drill's end of the town's line to the hub, on the drill's LAN
            proxy = FaultProxy(self.address("hub"), self.hub_port, seed=int(code),
                               listen_host=self.address("drill"), lab=self.lan_network)  # fmt: skip
            port, peer_port = BOX_PORT, PEER_PORT
        return BoxProcess(
            code, port, peer_port, self.root / "boxes" / code / "data",
            Path(), proxy, Identity.generate(), address=self.address(code),
        )  # fmt: skip

    @property
    def lan_network(self) -> Any:
        import ipaddress

        return ipaddress.ip_network(f"{self.address('drill')}/24", strict=False)

    @property
    def ceremony(self) -> Path:
        return self.root / "ceremony"

    def _lan_peer(self, box: BoxProcess, others: list[BoxProcess]) -> None:
        """What the IT staff set on a box besides its enrolment at the hub (`enrol`):
        its sync identity, the other boxes admitted as LAN sync peers, its settings."""
        from cloud.sync_api import enrol_peer
        from shared.storage import SqliteStorage
        from shared.sync.replica import IDENTITY_KEY

        box.data.mkdir(parents=True, exist_ok=True)
        # Discovery stays off (no interface): peers and printers are configured; the
        # settings bind the box's HTTPS certificate into its identity proof and name the
        # federation root.
        (box.data / "discovery.json").write_text(json.dumps({
            "tls_cert": str(box.tls / "server.crt"),
            "federation_root": bytes(self.federation_root.verify_key).hex(),
            "ca_file": str(self.ca_file),
        }))  # fmt: skip
        storage = SqliteStorage(box.data / "replica.db")
        try:
            storage.save(IDENTITY_KEY, box.identity.to_bytes())
            for other in others:
                enrol_peer(storage, other.identity.writer_id)
        finally:
            storage.close()
        (box.data / "sync.json").write_text(json.dumps({
            "listen": f"{box.address}:{box.peer_port}",
            "peers": [o.peer_url for o in others],
            "pull_interval_s": 2, "push_delay_s": 0.2, "watch_interval_s": 0.25,
            "backoff_initial_s": 0.5, "backoff_max_s": 3,
        }))  # fmt: skip

    def enrol(self) -> None:
        """Each box (and portable node) enrolled at the running hub as an installation
        enrols one (renkei/demo_enrolment.py `enrol_boxes`): a one-time token with its
        TLS files staged, then `renkei enroll` over HTTP. The hub certifies the box key
        (chained to the drill's root, pinned at the hub by `certify_hub`), keeps it in
        its registry and admits its sync identity; the box installs its certificate,
        TLS files and federation.json."""
        from renkei.demo_enrolment import DemoBox, DemoEnrolmentError, enrol_boxes

        boxes = [DemoBox(b.town, b.data, b.tls, self.staged_tls[b.box_id], b.box_id)
                 for b in [*self.boxes.values(), *self.laptops.values()]]  # fmt: skip
        try:
            enrol_boxes(self.hub_url, self.hub_data, self.hub_passphrase,
                        self.federation_root.verify_key, self.ca_file, boxes)  # fmt: skip
        except DemoEnrolmentError as exc:
            raise FederationError(f"box enrolment failed: {exc}") from exc
        self.say(f"連携ボックス {len(boxes)} 台をハブに登録しました"
                 "（ワンタイムトークン → renkei enroll）")  # fmt: skip

    # ------------------------------------------------------------------ processes

    def _in(self, host: str, command: list[str]) -> list[str]:
        """The command line that runs `command` at `host` (in its namespace, if any)."""
        return command if self.lan is None else self.lan.exec(host, *command)

    def _spawn(
        self, args: list[str], log: Path, env: dict[str, str] | None = None, *, host: str
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                self._in(host, [sys.executable, "-m", "renkei", *args]),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env, **(env or {})}, start_new_session=True,
            )  # fmt: skip

    def start(self) -> None:
        self.start_hub()
        self.enrol()
        for box in self.boxes.values():
            self._stack.enter_context(box.proxy.running())
        self._start_printers()
        for code in self.boxes:
            self.start_box(code, wait=False)
        for code in self.boxes:
            self.wait_box(code)
        self._start_laptops()

    def _start_laptops(self) -> None:
        """Each portable node starts at home and takes its town from its own box."""
        from renkei.drill import portable

        for code, laptop in self.laptops.items():
            try:
                self.start_box(code, box=laptop)
            except FederationError as exc:  # reported with the node; the drill goes on
                self.carried[code] = portable.Carried(code, laptop.box_id, note=str(exc))
        for code in self.laptops:
            if code not in self.carried:
                timeout = 120 if self.short else 900
                self.carried[code] = portable.wait_home_sync(self, code, timeout)

    def carry_laptop(self, town: str, host: str) -> None:
        """Case 2: the town's portable node goes to the host town (if it has one)."""
        from renkei.drill import portable

        if town in self.laptops and self.carried[town].home_synced_s is not None:
            self.say(f"  ノートPC（{self.laptops[town].box_id}）を受入町村の LAN に接続します")
            portable.carry(self, town, host)

    def stop_process(self, box: BoxProcess) -> None:
        if box.process is not None and box.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(box.process.pid, signal.SIGTERM)
            try:
                box.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _kill_group(box.process)
        box.process = None

    def start_hub(self) -> None:
        from renkei.commands.demo import _wait_ready

        self.hub = self._spawn(
            ["hub", "--data", str(self.hub_data), "--host", self.address("hub"),
             "--port", str(self.hub_port)],
            self.root / "logs" / "hub.log",
            {"RENKEI_HUB_PASSPHRASE": self.hub_passphrase}, host="hub",
        )  # fmt: skip
        self._wait(_wait_ready, self.hub_url, self.hub, "hub")

    def start_box(self, code: str, *, wait: bool = True, box: BoxProcess | None = None) -> None:
        box = box or self.boxes[code]
        box.process = self._spawn(
            ["box", "--hub", box.proxy.url, "--town", code, "--host", box.address,
             "--port", str(box.port), "--data", str(box.data), "--tls", str(box.tls)],
            self.root / "logs" / f"{box.box_id}.log", host=box.host,
        )  # fmt: skip
        if wait:
            self.wait_box(code, box)

    def wait_box(self, code: str, box: BoxProcess | None = None) -> None:
        from renkei.commands.demo import _wait_ready

        box = box or self.boxes[code]
        assert box.process is not None
        self._wait(_wait_ready, box.url, box.process, box.box_id)

    def _wait(self, wait: Any, url: str, process: subprocess.Popen[bytes], what: str) -> None:
        try:
            wait(url, process, self.ca_file, 180.0)
        except (RuntimeError, TimeoutError) as exc:
            message = f"{what} did not start: {exc} (logs: {self.root / 'logs'})"
            raise FederationError(message) from exc

    def kill_box(self, code: str) -> float:
        """The town hall goes down: the box and its workers die at once (SIGKILL)."""
        box = self.boxes[code]
        at = _kill_group(box.process)
        box.process = None
        return at

    def kill_hub(self) -> float:
        at = _kill_group(self.hub)
        self.hub = None
        return at

    def cut(self, code: str, down: bool = True) -> float:
        """Case 1: the line from the town hall to the cloud centre is cut (the proxy
        refuses every connection) — or mended."""
        self.boxes[code].proxy.faults.down = down
        return time.time()

    def hub_alive(self) -> bool:
        return self.hub is not None and self.hub.poll() is None

    # ------------------------------------------------------------------ printers

    def _start_printers(self) -> None:
        if shutil.which("ippeveprinter") is None:
            self.printers_error = "ippeveprinter がありません（cups-ipp-utils）"
            return
        for code, box in self.boxes.items():
            spool = self.root / "printers" / code
            spool.mkdir(parents=True)
            # in the town hall's namespace beside its box, or on loopback
            port = PRINTER_PORT if self.lan else free_port()
            host = box.address if self.lan else "localhost"
            # `-n` makes it listen on that name's addresses, IPv4 and IPv6 — an IPv4 literal
            # has no IPv6 one and it exits; without `-n` it listens on every address of
            # the town hall's namespace
            name = [] if self.lan else ["-n", host]
            log = self.root / "logs" / f"printer-{code}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    self._in(code, ["ippeveprinter", "-c", "/bin/true", "-d", str(spool), "-k",
                                    "-p", str(port), *name, "-f", "application/pdf",
                                    f"RenkeiDrill{code}{port}"]),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=spool, start_new_session=True,
                )  # fmt: skip
            if not _wait_port(box.address, port, process):
                self.printers_error = f"ippeveprinter が起動しません（{log}）"
                _kill_group(process)
                continue
            box.printer = Printer(
                f"ipp://{host}:{port}/ipp/print", spool, process, f"RenkeiDrill{code}{port}"
            )

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        try:
            processes = [b.process for b in [*self.boxes.values(), *self.laptops.values()]]
            processes.append(self.hub)
            processes += [b.printer.process for b in self.boxes.values() if b.printer]
            for process in processes:
                if process is not None and process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                if process is None:
                    continue
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _kill_group(process)
            self._remove_printer_queues()
            self._stack.close()
        finally:  # also when interrupted while stopping the processes
            self._close_network()

    def _close_network(self) -> None:
        """Every namespace and veth of the drill goes, whatever happened before."""
        if self.lan is None:
            return
        try:
            self.lan.close()
        except netns.NetnsError as exc:
            self.network_note = str(exc)
            self.say(f"後片付けに失敗しました: {exc}")

    def _remove_printer_queues(self) -> None:
        """The boxes offered the drill's printers as CUPS queues (edge.discovery); the
        printers are gone with the drill, so their queues go too instead of piling up in
        the machine's cupsd."""
        from edge.discovery import queue_name

        for box in self.boxes.values():
            if box.printer is not None and box.printer.instance:
                subprocess.run(
                    ["lpadmin", "-x", queue_name(box.printer.instance)],
                    capture_output=True, timeout=30, check=False,
                )  # fmt: skip


def _kill_group(process: subprocess.Popen[bytes] | None) -> float:
    at = time.time()
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    return at


def _wait_port(
    host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 20
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------- edits


@dataclass
class Edit:
    seq: int
    at: float  # wall-clock time the edit was durable in the box's store


class EditWriter:
    """Edits made at a town's own box, one every `interval_s`, while the box is up: each
    a small sealed CRDT update in the town's drill document, written with the box's sync
    identity into the box's store (the box's sync agent pushes it within seconds)."""

    def __init__(self, box: BoxProcess, public: Any, interval_s: float = 0.5) -> None:
        self.box = box
        self.public = public
        self.interval_s = interval_s
        self.edits: list[Edit] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"edits-{self.box.town}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def last_before(self, moment: float) -> Edit | None:
        made = [e for e in self.edits if e.at <= moment]
        return made[-1] if made else None

    def _run(self) -> None:
        import loro

        from shared.storage import SqliteStorage
        from shared.sync.log import BlobLog
        from shared.sync.replica import seal_documents

        storage = SqliteStorage(self.box.data / "replica.db")
        try:
            log = BlobLog(storage)
            doc = loro.LoroDoc()  # type: ignore[no-untyped-call]
            doc.peer_id = secrets.randbits(63)
            counter = 0
            while not self._stop.wait(self.interval_s):
                counter += 1
                before = doc.oplog_vv
                doc.get_map("drill").insert(f"edit-{counter}", time.time())
                doc.commit()
                update = bytes(doc.export(loro.ExportMode.Updates(before)))
                try:
                    log.refresh()
                    received = seal_documents(log, self.box.identity, self.public,
                                              {"drill-edits": update})  # fmt: skip
                except Exception:
                    self.errors += 1
                    continue
                ref = received[0].ref if received else None
                if ref is None:
                    self.errors += 1
                    continue
                self.edits.append(Edit(ref.seq, time.time()))
        finally:
            storage.close()


def held_edits(box: BoxProcess, town: str, writer_id: str, seqs: list[int]) -> list[int]:
    """Which of a town's edits (by this writer) a box's store holds, read from its log."""
    from shared.storage import SqliteStorage
    from shared.sync.log import BlobLog

    storage = SqliteStorage(box.data / "replica.db")
    try:
        log = BlobLog(storage)
        return [seq for seq in seqs if log.holds(town, writer_id, seq)]
    finally:
        storage.close()
