"""Rebuilding the hub from the boxes' replicas (docs/operations.md, "rebuilding the hub").

When the cloud centre's data folder is lost, every box still holds each town's documents
as blobs sealed to the town. The operator restores the custody file (from its offline
backup, or by the key ceremony) and feeds the boxes' replica stores to the new hub: each
blob is verified against the hub's writer key, opened with the town's key ring, and its
document merged into the new registry (Loro merges: a newer copy from one box and an
older from another give the newest state). Clerks' credentials come back the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from nacl.signing import VerifyKey

from cloud.custody import HUB_WRITER_ID, Custody
from cloud.store import TownStore, towns_entry
from shared.blobs import open_blob
from shared.registry import DEFAULT_SHARDS, TownRegistry
from shared.storage import Storage


def rebuild_from_replicas(
    replicas: Iterable[Storage], custody: Custody, hub: Storage, shards: int = DEFAULT_SHARDS
) -> dict[str, int]:
    """Restore every town the custody holds keys for; returns documents restored per town."""
    writer_key: VerifyKey = custody.writer.verify_key

    def lookup(writer_id: str) -> VerifyKey | None:
        return writer_key if writer_id == HUB_WRITER_ID else None

    registries: dict[str, TownRegistry] = {}
    credentials: dict[tuple[str, ...], bytes] = {}
    for replica in replicas:
        for town, ring in custody.rings.items():
            registry = registries.setdefault(town, TownRegistry(town, shards=shards))
            for key, blob in replica.load_range((town, "blob")):
                _, plaintext = open_blob(blob, ring, lookup)
                registry.load(key[2], plaintext)
            for key, record in replica.load_range((town, "credential")):
                credentials.setdefault(key, record)
    restored = {}
    for town, registry in registries.items():
        TownStore(hub, town).save_snapshots(registry, registry.documents)
        custody.publish_documents(hub, registry)
        hub.save_many([towns_entry(hub, town), *credentials_for(town, credentials)])
        restored[town] = len(registry.documents)
    return restored


def credentials_for(
    town: str, credentials: dict[tuple[str, ...], bytes]
) -> list[tuple[tuple[str, ...], bytes]]:
    return [(key, record) for key, record in sorted(credentials.items()) if key[0] == town]
