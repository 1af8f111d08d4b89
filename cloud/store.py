"""The hub's import state beside its blob log: what the last import of each table was,
each town's settings and export time, and the list of towns.

The towns' documents themselves are nowhere here: they are the sealed blobs of the hub's
log (`cloud.replica`), the same every box holds. Keys in the storage seam (the hub's data
folder may hold plaintext: it is the cloud centre, the towns' contracted processor — a
box never does):

    (town, "import", table)          the previous import of a table (zlib JSON)
    (town, "town")                   the town's settings as exported (JSON)
    (town, "as-of")                  the core system's export time of the newest import
    ("federation", "towns")          the towns the hub holds

Older hubs kept plaintext documents here, (town, "doc", name) and (town, "update", name,
seq): `legacy_registry` reads them once, to seal them into the log as its first base.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping

from shared.crdt import CrdtPendingError
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

    def previous_import(self, table: str) -> dict[str, Record]:
        data = self.storage.load((self.town_code, "import", table))
        if data is None:
            return {}
        loaded: dict[str, Record] = json.loads(zlib.decompress(data))
        return loaded

    def import_entry(
        self, table: str, records: Mapping[str, Record]
    ) -> tuple[StorageKey, bytes]:
        """The storage item recording a table's import (saved with the import's blobs)."""
        state = json.dumps(records, ensure_ascii=False, sort_keys=True).encode()
        return (self.town_code, "import", table), zlib.compress(state, 6)

    def document_names(self) -> list[str]:
        """The town's documents, as named by the blobs of the hub's sync log."""
        names = {
            json.loads(meta)["d"].split("/", 1)[-1]
            for _, meta in self.storage.load_range((self.town_code, "logmeta"))
        }
        return sorted(names)

    def as_of(self) -> str:
        data = self.storage.load((self.town_code, "as-of"))
        return "" if data is None else data.decode()

    def town_settings(self) -> dict[str, object] | None:
        data = self.storage.load((self.town_code, "town"))
        return None if data is None else dict(json.loads(data))

    # ------------------------------------------------------------------ legacy

    def legacy_registry(self, shards: int) -> TownRegistry | None:
        """The documents an older hub kept in plaintext, or None if there are none."""
        docs = self.storage.load_range((self.town_code, "doc"))
        updates = self.storage.load_range((self.town_code, "update"))
        if not docs and not updates:
            return None
        registry = TownRegistry(self.town_code, shards=shards)
        waiting = []
        for key, data in [*docs, *updates]:
            try:
                registry.load(key[2], data)
            except CrdtPendingError:
                waiting.append((key[2], data))
        for name, data in waiting:
            registry.load(name, data)
        return registry

    def remove_legacy(self) -> None:
        for area in ("doc", "update", "sealed", "sealed-partner"):
            for key, _ in self.storage.load_range((self.town_code, area)):
                self.storage.remove(key)
