"""A hub with imported towns and boxes that receive them the production way — their
credentials and keys fetched (`BoxReplica.pull`), their documents through the sync log
(`SyncAgent`) — for tests in-process. Boxes are enrolled at the hub by hand until
enrolment lands (`cloud.sync_api.enrol_peer`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx

from cloud.custody import Custody
from cloud.importer import import_export
from cloud.sync_api import enrol_peer
from edge.replica import BoxReplica
from edge.sync_agent import AgentConfig, SyncAgent
from shared import crypto
from shared.export_csv import read_town
from shared.model import Clerk
from shared.storage import SqliteStorage, Storage
from shared.sync.replica import load_or_create_identity

PASSWORD = "correct horse battery staple 連携"
FAST = crypto.INTERACTIVE  # tests only; the default is asserted in test_crypto


def roster_and_other(folder: Path) -> tuple[Clerk, Clerk]:
    clerks = read_town(folder).clerks
    return next(c for c in clerks if c.on_roster), next(c for c in clerks if not c.on_roster)


def make_hub(
    data: Path,
    export_dir: Path,
    *,
    clerks: Iterable[str] = ("15307", "15405", "15581"),
    partner_without_my_number: Iterable[str] = (),
) -> Custody:
    """Import the export into a hub data folder (custody saved under `PASSWORD`) and
    provision the roster and one other clerk of each town in `clerks`."""
    data.mkdir(parents=True, exist_ok=True)
    storage = SqliteStorage(data / "hub.db")
    custody = Custody.create()
    try:
        report = import_export(
            export_dir,
            storage,
            custody=custody,
            partner_without_my_number=set(partner_without_my_number),
        )
        assert report.ok, report.summary()
        for code in clerks:
            for clerk in roster_and_other(export_dir / code):
                custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=FAST)
    finally:
        storage.close()
    custody.save(data, PASSWORD)
    return custody


def enrol_box(hub_data: Path, box: Storage, town: str, name: str = "") -> str:
    """Give a box its sync identity and admit it at the hub; returns the peer id."""
    peer = load_or_create_identity(box).writer_id
    storage = SqliteStorage(hub_data / "hub.db")
    try:
        enrol_peer(storage, peer, name=name or f"box-{town}", town=town)
    finally:
        storage.close()
    return peer


def fetch(box: Storage, url: str, town: str, **config: object) -> SyncAgent:
    """What a box does at start-up: keys and credentials, then one sync with the hub."""
    with httpx.Client(base_url=url) as client:
        BoxReplica(box).pull(client, box_town=town)
    agent = SyncAgent(box, AgentConfig(town, hub_url=url, **config))  # type: ignore[arg-type]
    agent.sync_peer(url)
    return agent


def enrol_box_dir(hub_data: Path, box_data: Path, town: str, name: str = "") -> str:
    """Before a box process first starts: its sync identity, admitted at the hub."""
    storage = SqliteStorage(box_data / "replica.db")
    try:
        return enrol_box(hub_data, storage, town, name)
    finally:
        storage.close()
