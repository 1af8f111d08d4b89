"""Rebuilding the hub from the boxes' replicas (docs/operations.md, "rebuilding the hub").

When the cloud centre's data folder is lost, every box still holds each town's sync log:
the same sealed blobs the hub held (a partner box holds them too, or relays them). The
operator restores the custody file (from its offline backup, or by the key ceremony) and
feeds the boxes' replica stores to the new hub: every blob is checked (structure, its
writer's signature) and stored in the new hub's log — blobs are self-certifying, so the
union of the boxes' logs is the federation's log, whichever box was freshest. Each town
is then opened with the custody's key ring to prove it reads; clerks' credentials come
back the same way. The boxes then sync with the new hub as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from cloud.custody import Custody
from cloud.replica import HubReplica
from cloud.store import towns_entry
from shared.registry import DEFAULT_SHARDS
from shared.storage import Storage
from shared.sync.log import BlobLog
from shared.sync.notices import KINDS


def rebuild_from_replicas(
    replicas: Iterable[Storage], custody: Custody, hub: Storage, shards: int = DEFAULT_SHARDS
) -> dict[str, int]:
    """Restore every town the custody holds keys for; returns documents restored per town."""
    new = HubReplica(hub, custody, shards=shards)
    credentials: dict[tuple[str, ...], bytes] = {}
    for storage in replicas:
        box = BlobLog(storage)
        for town in box.towns():
            new.log.add_many(blob for _, blob in box.load_town(town))
            notices = [
                notice
                for kind in KINDS
                if (notice := box.notices.get(town, kind)) is not None
            ]
            new.log.accept_notices(notices, [town])
        for town in custody.rings:
            for key, record in storage.load_range((town, "credential")):
                credentials.setdefault(key, record)
    restored = {}
    for town, ring in custody.rings.items():
        if not new.log.count(town):
            continue
        registry = new.registry(town)
        hub.save_many(
            [
                towns_entry(hub, town),
                ((town, "public"), json.dumps(ring.public.to_json()).encode()),
                *sorted((k, v) for k, v in credentials.items() if k[0] == town),
            ]
        )
        restored[town] = len(registry.documents)
    return restored



