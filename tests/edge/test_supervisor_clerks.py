"""Clerk changes made on a box reach the hub (edge/clerks.py → cloud/clerks_api.py): the
hub takes a record certified by the town's keys, refuses a replayed older one and one for
a revoked clerk, and a pull from the hub does not undo a change the hub has not had yet."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from servers import serve

from cloud.app import create_app, hub_db_path
from edge.clerks import ClerkOutbox
from shared import crypto
from shared.clerk_records import new_credential, recertify, revocation, verify_record
from shared.model import Clerk, Role
from shared.storage import MemoryStorage, SqliteStorage

TOWN = "15307"
PASSWORD = "correct horse battery staple 連携"


def _hub(tmp_path: Path, ring: crypto.KeyRing) -> Path:
    storage = SqliteStorage(hub_db_path(tmp_path))
    storage.save((TOWN, "public"), json.dumps(ring.public.to_json()).encode())
    storage.close()
    return tmp_path


def _clerk(login: str = "seiro.newcomer") -> Clerk:
    return Clerk(TOWN, login, "新人 太郎", "", (Role.CLERK,), on_roster=False)


def test_the_hub_takes_a_box_made_clerk_and_refuses_replays(tmp_path: Path) -> None:
    ring = crypto.KeyRing(TOWN, [crypto.TownKeys.generate(TOWN)])
    data = _hub(tmp_path, ring)
    box = ClerkOutbox(MemoryStorage())
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    old = new_credential(ring, _clerk(), PASSWORD, kdf_limits=crypto.INTERACTIVE, now=earlier)
    newer = recertify(ring, old, on_roster=True)
    with serve(create_app(data)) as url, httpx.Client(base_url=url, timeout=30) as hub:
        box.store_record(TOWN, newer)
        assert box.pending(TOWN) == {"seiro.newcomer": "record"}
        assert box.push(hub, [TOWN]) == 1 and box.pending(TOWN) == {}
        listing = hub.get(f"/api/replica/{TOWN}", params={"box_town": TOWN})
        held = hub.get(
            f"/api/replica/{TOWN}/credentials/seiro.newcomer", params={"box_town": TOWN}
        ).json()
        assert verify_record(held, ring.public).on_roster
        replay = hub.post(f"/api/replica/{TOWN}/credentials/seiro.newcomer", json=old)
        assert replay.status_code == 409
        statement = revocation(
            ring, "seiro.newcomer", by="seiro.boss", at=datetime.now(UTC).timestamp() + 1
        )
        box.store_revocation(TOWN, statement)
        assert box.push(hub, [TOWN]) == 1
        gone = hub.get(f"/api/replica/{TOWN}/credentials/seiro.newcomer", params={"box_town": TOWN})
        assert gone.status_code == 404
        again = hub.post(f"/api/replica/{TOWN}/credentials/seiro.newcomer", json=newer)
        assert again.status_code == 409
        forged_ring = crypto.KeyRing(TOWN, [crypto.TownKeys.generate(TOWN)])
        forged = new_credential(
            forged_ring, _clerk("seiro.mallory"), PASSWORD, kdf_limits=crypto.INTERACTIVE
        )
        assert (
            hub.post(f"/api/replica/{TOWN}/credentials/seiro.mallory", json=forged).status_code
            == 409
        )
        forged_revocation = revocation(forged_ring, "seiro.boss", by="x", at=0)
        assert (
            hub.post(f"/api/replica/{TOWN}/revocations", json=forged_revocation).status_code == 400
        )
    assert listing.status_code in (200, 404)  # no documents published in this small hub


def test_a_pull_keeps_a_change_the_hub_has_not_had_yet(tmp_path: Path) -> None:
    """The box's replica keeps a credential with a pending outbox entry even when the
    hub's listing does not name it (edge/replica.py)."""
    from edge.replica import BoxReplica

    ring = crypto.KeyRing(TOWN, [crypto.TownKeys.generate(TOWN)])
    storage = MemoryStorage()
    record = new_credential(ring, _clerk(), PASSWORD, kdf_limits=crypto.INTERACTIVE)
    ClerkOutbox(storage).store_record(TOWN, record)

    class Hub:
        def get(self, url: str, params: object = None) -> object:
            class Answer:
                status_code = 200
                content = b"[]"

                def raise_for_status(self) -> Answer:
                    return self

                def json(self) -> object:
                    return {"as_of": "", "documents": {}, "credentials": []}

            return Answer()

    BoxReplica(storage)._pull_town(Hub(), TOWN, ring.public.to_json(), TOWN)  # type: ignore[arg-type]
    assert storage.load((TOWN, "credential", "seiro.newcomer")) is not None
