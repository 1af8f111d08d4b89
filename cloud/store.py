"""The hub's registry store: every town's documents, update log and import state.

Keys in the storage seam (the hub's data folder may hold plaintext: it is the cloud
centre, the towns' contracted processor — a box never does):

    (town, "doc", name)              latest snapshot of a document
    (town, "update", name, seq)      each delta applied, zero-padded sequence number
    (town, "import", table)          the previous import of a table (zlib JSON)
    (town, "town")                   the town's settings as exported (JSON)
    (town, "as-of")                  the core system's export time of the newest import
    ("federation", "towns")          the towns the hub holds
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping

from shared.records import Record
from shared.registry import TownRegistry
from shared.storage import Storage, StorageKey

_TOWNS_KEY: StorageKey = ("federation", "towns")


def known_towns(storage: Storage) -> list[str]:
    data = storage.load(_TOWNS_KEY)
    return [] if data is None else list(json.loads(data))


def towns_entry(storage: Storage, town_code: str) -> tuple[StorageKey, bytes]:
    """The storage item that adds a town to the federation's list (for a save_many)."""
    towns = sorted(set(known_towns(storage)) | {town_code})
    return _TOWNS_KEY, json.dumps(towns).encode()


class TownStore:
    def __init__(self, storage: Storage, town_code: str) -> None:
        self.storage = storage
        self.town_code = town_code

    def load_registry(self, shards: int) -> TownRegistry:
        """Snapshots, then every update: an update already inside a snapshot is a no-op,
        so a crash between writing updates and the next snapshot loses nothing."""
        registry = TownRegistry(self.town_code, shards=shards)
        for key, data in self.storage.load_range((self.town_code, "doc")):
            registry.load(key[2], data)
        for key, data in self.storage.load_range((self.town_code, "update")):
            registry.load(key[2], data)
        return registry

    def document_names(self) -> list[str]:
        return [key[2] for key, _ in self.storage.load_range((self.town_code, "doc"))]

    def snapshot(self, name: str) -> bytes | None:
        return self.storage.load((self.town_code, "doc", name))

    def previous_import(self, table: str) -> dict[str, Record]:
        data = self.storage.load((self.town_code, "import", table))
        if data is None:
            return {}
        loaded: dict[str, Record] = json.loads(zlib.decompress(data))
        return loaded

    def next_update_seq(self, name: str) -> int:
        existing = self.storage.load_range((self.town_code, "update", name))
        return 1 + max((int(key[3]) for key, _ in existing), default=0)

    def commit_import(
        self,
        deltas: Mapping[str, bytes],
        table: str,
        records: Mapping[str, Record],
        extra: Mapping[StorageKey, bytes] | None = None,
    ) -> None:
        """Persist one table's import: the deltas of the documents it touched and the
        import state, in one transaction (snapshots follow in `save_snapshots`)."""
        items: list[tuple[StorageKey, bytes]] = []
        for name, delta in deltas.items():
            seq = self.next_update_seq(name)
            items.append(((self.town_code, "update", name, f"{seq:010d}"), delta))
        state = json.dumps(records, ensure_ascii=False, sort_keys=True).encode()
        items.append(((self.town_code, "import", table), zlib.compress(state, 6)))
        items.extend((extra or {}).items())
        self.storage.save_many(items)

    def save_snapshots(self, registry: TownRegistry, names: Iterable[str]) -> None:
        self.storage.save_many(
            ((self.town_code, "doc", name), registry.documents[name].export_snapshot())
            for name in sorted(set(names))
        )

    def as_of(self) -> str:
        data = self.storage.load((self.town_code, "as-of"))
        return "" if data is None else data.decode()

    def town_settings(self) -> dict[str, object] | None:
        data = self.storage.load((self.town_code, "town"))
        return None if data is None else dict(json.loads(data))
