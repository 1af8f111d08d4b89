"""The portable node: a box of a town on a laptop, carried to the host town in case 2.

At home it sits on the town hall's LAN (the drill's bridge, at .21, .22, .23) as a box of
its own (`renkei box`, box id `laptop-<town>`, enrolled like the others and admitted at
the hub and every box), syncing only its town, with its own box as its one peer and the
town's line to the hub. Before any failure the drill waits until it holds every entry of
its town that its box holds. When the town hall goes down (case 2), the laptop is shut,
its cable pulled, and it is plugged straight into the host town's namespace
(`netns.Lan.cable`: it reaches the host box's address and nothing else), started again
with the host box as its one peer — and the drill measures how long until the two hold
the same entries of the town, both ways. Namespaces only: on loopback there is no cable
to pull, and the report says so.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from renkei.drill.federation import BOX_PORT, PEER_PORT, BoxProcess, LocalFederation


def host_name(town: str) -> str:
    return f"laptop{town}"


@dataclass
class Carried:
    """What the report says of one portable node."""

    town: str
    node: str
    namespace: str = ""
    address: str = ""
    home_entries: int = 0  # entries of its town it held when it left
    home_synced_s: float | None = None  # from its start to holding all of its box's
    carried_to: str = ""
    cable: str = ""
    pushed: int = 0  # entries the host box lacked when it was plugged in
    pulled: int = 0  # entries it lacked
    synced_s: float | None = None  # from being plugged in to both holding the same
    ok: bool = False
    note: str = ""
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def make(fed: LocalFederation, town: str) -> BoxProcess:
    """The laptop's box: data, identity, TLS from the drill's CA staged for its
    enrolment at the hub (`LocalFederation.enrol`, once the hub answers)."""
    from cloud.sync_api import enrol_peer
    from edge.tls import issue_server_cert, write_server_files
    from shared.storage import SqliteStorage
    from shared.sync.identity import Identity

    assert fed.lan is not None
    own = fed.boxes[town]
    base = fed.root / "laptops" / town
    laptop = BoxProcess(town, BOX_PORT, PEER_PORT, base / "data", base / "tls", own.proxy,
                        Identity.generate(), address=fed.address(host_name(town)),
                        name=f"laptop-{town}", lan_host=host_name(town))  # fmt: skip
    ca = fed.ca_file.parent
    cert, key = issue_server_cert((ca / "renkei-ca.crt").read_bytes(),
                                  (ca / "renkei-ca.key").read_bytes(),
                                  [f"laptop-{town}.renkei.lan"], [laptop.address])  # fmt: skip
    fed.staged_tls[laptop.box_id] = fed.ceremony / laptop.box_id
    write_server_files(fed.staged_tls[laptop.box_id], cert, key)
    fed._lan_peer(laptop, [own])
    _sync_settings(laptop, own, town)
    for box in fed.boxes.values():  # every box admits it: it syncs at home and away
        storage = SqliteStorage(box.data / "replica.db")
        try:
            enrol_peer(storage, laptop.identity.writer_id)
        finally:
            storage.close()
    return laptop


def _sync_settings(laptop: BoxProcess, peer: BoxProcess, town: str) -> None:
    path = laptop.data / "sync.json"
    settings = json.loads(path.read_text())
    settings.update(peers=[peer.peer_url], towns=[town])
    path.write_text(json.dumps(settings))


def _refs(box: BoxProcess, town: str) -> set[tuple[str, int]]:
    from shared.storage import SqliteStorage
    from shared.sync.log import BlobLog

    storage = SqliteStorage(box.data / "replica.db")
    try:
        return {(ref.writer, ref.seq) for ref in BlobLog(storage).refs(town)}
    finally:
        storage.close()


def wait_home_sync(fed: LocalFederation, town: str, timeout: float) -> Carried:
    """After the laptop started at home: until it holds every entry its box holds."""
    laptop, own = fed.laptops[town], fed.boxes[town]
    carried = Carried(town, laptop.box_id, fed.lan.namespaces[host_name(town)] if fed.lan
                      else "", laptop.address)  # fmt: skip
    started = time.monotonic()
    wanted = _refs(own, town)
    held: set[tuple[str, int]] = set()
    while time.monotonic() - started < timeout:
        held = _refs(laptop, town)
        if wanted and wanted <= held:
            carried.home_entries = len(held)
            carried.home_synced_s = round(time.monotonic() - started, 2)
            carried.evidence.append(
                f"{laptop.box_id}（{laptop.address}、{carried.namespace}）: 自庁 {own.box_id} の"
                f"{len(wanted)} 件をすべて保持（{carried.home_synced_s} 秒）")
            return carried
        time.sleep(0.5)
    carried.note = f"自庁ボックスの {len(wanted)} 件のうち {len(wanted & held)} 件しか届きません"
    return carried


def _edit_on_the_way(fed: LocalFederation, laptop: BoxProcess) -> set[tuple[str, int]]:
    """An edit made on the laptop while it travels (lid open, no network): a sealed
    update of the town written with the laptop's sync identity, held nowhere else."""
    from renkei.drill.federation import EditWriter

    writer = EditWriter(laptop, fed.custody.ring(laptop.town).public, interval_s=0.1)
    writer.start()
    deadline = time.monotonic() + 30
    while not writer.edits and time.monotonic() < deadline:
        time.sleep(0.1)
    writer.stop()
    return {(laptop.identity.writer_id, e.seq) for e in writer.edits}


def carry(fed: LocalFederation, town: str, host: str, timeout: float = 180) -> Carried:
    """The town hall is down: the laptop goes to `host` and syncs with its box there."""
    carried: Carried = fed.carried[town]
    laptop, host_box = fed.laptops[town], fed.boxes[host]
    lan = fed.lan
    assert lan is not None
    try:
        fed.stop_process(laptop)  # shut the lid
        lan.unplug(host_name(town))
        carried.cable = lan.cable(host_name(town), host)
        carried.carried_to = host
        carried.evidence.append(
            f"{laptop.box_id} を {host_box.box_id} の名前空間 {lan.namespaces[host]} に接続"
            f"（{carried.cable} → {laptop.address}、到達先は {host_box.address} のみ）")
        _sync_settings(laptop, host_box, town)
        travelled = _edit_on_the_way(fed, laptop)
        carried.evidence.append(
            f"移動中にノートPCで編集 {len(travelled)} 件（ノートPCにだけある記録）")
        mine, theirs = _refs(laptop, town), _refs(host_box, town)
        carried.pushed, carried.pulled = len(mine - theirs), len(theirs - mine)
        plugged = time.monotonic()
        fed.start_box(laptop.town, box=laptop, wait=False)
        while time.monotonic() - plugged < timeout:
            if laptop.process is None or laptop.process.poll() is not None:
                carried.note = "ノートPCのボックスが停止しました"
                return carried
            mine, theirs = _refs(laptop, town), _refs(host_box, town)
            if travelled and mine == theirs:
                carried.synced_s = round(time.monotonic() - plugged, 2)
                carried.ok = True
                carried.evidence.append(
                    f"{host_box.box_id} と LAN で同期: 送った {carried.pushed} 件・受けた "
                    f"{carried.pulled} 件、両方が同じ {len(mine)} 件を保持"
                    f"（{carried.synced_s} 秒）")
                return carried
            time.sleep(0.5)
        carried.note = (f"{timeout:.0f} 秒で揃いません（ノートPC {len(mine)} 件、"
                        f"{host_box.box_id} {len(theirs)} 件）")  # fmt: skip
    except Exception as exc:  # the report says what happened; the drill goes on
        with contextlib.suppress(Exception):
            carried.note = f"{type(exc).__name__}: {exc}"
    return carried
