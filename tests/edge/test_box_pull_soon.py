"""A sealed export goes to the hub at once (`Box.pull_soon`), not at the box's next
scheduled pull: with the pull interval set to an hour, an enrolled box still hands a
freshly sealed export to a running hub, which keeps it for the operator's intake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from enrolment_world import PASSPHRASE, TOWN, make_world
from servers import serve
from test_alerts import _token

from cloud.app import create_app as create_hub
from edge.app import Box, BoxConfig
from edge.boxkey import box_signing_key
from edge.enrolment import enrol
from edge.exports import seal_export
from shared.storage import SqliteStorage

NAME = "renkei-export-15307-test"


def _held_at_hub(hub: Path) -> list[str]:
    storage = SqliteStorage(hub / "hub.db")
    try:
        return [key[2] for key, _ in storage.load_range((TOWN, "export-meta"))]
    finally:
        storage.close()


async def _hand_over(box: Box, hub: Path, export: bytes) -> list[str]:
    puller = asyncio.get_running_loop().create_task(box.pull_forever())
    try:
        await asyncio.sleep(0)  # the loop is waiting out its hour
        box.storage.save((TOWN, "export", NAME), export)
        box.pull_soon()
        for _ in range(300):  # generous: a few pulls' worth on a loaded machine
            if held := await asyncio.to_thread(_held_at_hub, hub):
                return held
            await asyncio.sleep(0.1)
        return []
    finally:
        puller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await puller


def test_a_sealed_export_reaches_the_hub_without_waiting_for_the_next_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    world = make_world(tmp_path)
    data = tmp_path / "box"
    hub_app = create_hub(world.hub)
    with serve(hub_app) as hub_url:
        enrol(
            hub_url, _token(hub_app), data, root=world.root.verify_key,
            tls_dir=tmp_path / "box-tls", from_dir=world.tls, ca_file=world.ca,
        )  # fmt: skip
        box = Box(BoxConfig(hub_url, TOWN, data, box_id="seiro-1", pull_interval_s=3600))
        try:
            box.pull_once()
            assert box.hub_reachable and TOWN in box.replica.towns()
            export = seal_export(
                json.dumps({"files": {}}).encode(), "emergency", NAME, world.town.public,
                "seiro-1", box_signing_key(data),
            )  # fmt: skip
            assert asyncio.run(_hand_over(box, world.hub, export)) == [NAME]
            assert box.storage.load((TOWN, "export-sent", NAME)) is not None
        finally:
            asyncio.run(box.close())
