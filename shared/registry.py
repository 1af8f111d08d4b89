"""A town's registry as CRDT documents, sharded so no document grows past a few MB.

Documents of one town (BRIEF §3):
- `blocks`: the 支援措置 — small, imported and synced before anything else;
- `shard-NN`: households and residents, placed by a hash of the household id (district is
  an attribute, so a move between districts is one edit); a person's tax, insurance,
  vehicles and welfare entry placed by a hash of the person's id (they follow the
  person, not the household);
- `directory`: clerks, the 外字 table and the town's settings (its town.json, as exported,
  with legacy 外字 mapped).

Placement uses BLAKE2b of the id (stable across processes and versions, unlike `hash()`),
modulo the town's shard count, which is part of the town's layout and never changes for
a town once chosen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared import model
from shared.crdt import RecordDocument
from shared.records import TABLES, Record, from_record

DEFAULT_SHARDS = 16
BLOCKS = "blocks"
DIRECTORY = "directory"

_DIRECTORY_TABLES = {"clerks", "gaiji", "town"}  # "town": the town's settings (town.json)
_HOUSEHOLD_TABLES = {"households", "residents"}


def shard_of(anchor_id: str, shards: int) -> int:
    digest = hashlib.blake2b(anchor_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_name(index: int) -> str:
    return f"shard-{index:03d}"


def _anchor(table: str, record: Mapping[str, Any], record_id: str) -> str:
    if table == "households":
        return record_id
    if table == "residents":
        return str(record["household_id"])
    for person_field in ("resident_id", "owner_id", "taxpayer_id"):
        if person_field in record:
            return str(record[person_field])
    raise KeyError(f"no placement rule for table {table}")


@dataclass(frozen=True, slots=True)
class Upsert:
    table: str
    record_id: str
    fields: Record  # only the fields that changed (all of them for a new record)
    full: Record  # the whole record after the change (used for placement)
    previous: Record | None = None  # the record before, if it existed


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    record_id: str
    full: Record  # the record as it was (used for placement)


Change = Upsert | Delete


@dataclass(slots=True)
class TownRegistry:
    town_code: str
    shards: int = DEFAULT_SHARDS
    documents: dict[str, RecordDocument] = field(default_factory=dict)

    def document_name(self, table: str, record_id: str, record: Mapping[str, Any]) -> str:
        if table == "support_blocks":
            return BLOCKS
        if table in _DIRECTORY_TABLES:
            return DIRECTORY
        return shard_name(shard_of(_anchor(table, record, record_id), self.shards))

    def document(self, name: str) -> RecordDocument:
        if name not in self.documents:
            self.documents[name] = RecordDocument(f"{self.town_code}/{name}")
        return self.documents[name]

    def apply(self, changes: Iterable[Change], message: str = "") -> dict[str, bytes]:
        """Apply changes and commit; returns each touched document's update bytes (the
        delta that sync ships), keyed by document name."""
        before: dict[str, bytes] = {}
        for change in changes:
            name = self.document_name(change.table, change.record_id, change.full)
            doc = self.document(name)
            before.setdefault(name, doc.version())
            if isinstance(change, Upsert):
                old_name = (
                    self.document_name(change.table, change.record_id, change.previous)
                    if change.previous is not None
                    else name
                )
                if old_name != name:  # moved to a household in another shard
                    old_doc = self.document(old_name)
                    before.setdefault(old_name, old_doc.version())
                    old_doc.delete(change.table, change.record_id)
                    doc.set_fields(change.table, change.record_id, change.full)
                else:
                    doc.set_fields(change.table, change.record_id, change.fields)
            else:
                doc.delete(change.table, change.record_id)
        deltas = {}
        for name, version in before.items():
            doc = self.documents[name]
            doc.commit(message)
            deltas[name] = doc.export_updates(version)
        return deltas

    def load(self, name: str, data: bytes) -> None:
        self.document(name).import_bytes(data)

    def snapshots(self) -> dict[str, bytes]:
        return {name: doc.export_snapshot() for name, doc in sorted(self.documents.items())}

    # ------------------------------------------------------------------ reading

    def records(self, table: str) -> Iterator[tuple[str, Record]]:
        for name in self._documents_for(table):
            yield from self.documents[name].records(table).items()

    def objects(self, table: str) -> Iterator[Any]:
        cls = TABLES[table]
        for _, record in self.records(table):
            yield from_record(cls, record)

    def get(self, table: str, record_id: str, anchor: str | None = None) -> Any | None:
        """One record; `anchor` (household id for a resident) finds the shard directly."""
        names = (
            [self.document_name(table, record_id, {"household_id": anchor})]
            if anchor is not None and table == "residents"
            else self._documents_for(table)
        )
        for name in names:
            doc = self.documents.get(name)
            record = doc.get(table, record_id) if doc else None
            if record is not None:
                return from_record(TABLES[table], record)
        return None

    def person_shard(self, person_id: str) -> int:
        """The shard holding a person's tax, insurance and vehicle records."""
        return shard_of(person_id, self.shards)

    def shard_objects(self, table: str, index: int) -> Iterator[Any]:
        """The records of `table` in one shard (none if the box holds no such shard)."""
        doc = self.documents.get(shard_name(index))
        if doc is None:
            return
        cls = TABLES[table]
        for record in doc.records(table).values():
            yield from_record(cls, record)

    def shard_ids(self, table: str, index: int) -> list[str]:
        """The record ids of `table` in one shard, decoding no record."""
        doc = self.documents.get(shard_name(index))
        return doc.ids(table) if doc is not None else []

    def shard_fields(self, table: str, index: int, fields: Sequence[str]) -> dict[str, Record]:
        """A few fields of every record of `table` in one shard, by record id."""
        doc = self.documents.get(shard_name(index))
        return doc.records(table, fields) if doc is not None else {}

    def shard_get(self, table: str, index: int, record_id: str) -> Any | None:
        """One record of `table` from the shard it is placed in."""
        doc = self.documents.get(shard_name(index))
        record = doc.get(table, record_id) if doc is not None else None
        return from_record(TABLES[table], record) if record is not None else None

    def _documents_for(self, table: str) -> list[str]:
        if table == "support_blocks":
            return [BLOCKS] if BLOCKS in self.documents else []
        if table in _DIRECTORY_TABLES:
            return [DIRECTORY] if DIRECTORY in self.documents else []
        return sorted(n for n in self.documents if n.startswith("shard-"))

    def residents_with_households(self) -> Iterator[tuple[model.Resident, model.Household]]:
        """Every resident with their household, shard by shard (both live in one shard)."""
        for name in self._documents_for("residents"):
            doc = self.documents[name]
            households = {
                hid: from_record(model.Household, rec)
                for hid, rec in doc.records("households").items()
            }
            for rec in doc.records("residents").values():
                resident = from_record(model.Resident, rec)
                household = households.get(resident.household_id)
                if household is not None:
                    yield resident, household

    def resident_records_with_households(
        self,
        fields: Sequence[str] | None = None,
        household_fields: Sequence[str] | None = None,
    ) -> Iterator[tuple[Record, Record]]:
        """`residents_with_households` as flat records, building no model objects: what
        a town's search index is built from when the town opens (a resident's whole
        record is materialised later, when a page shows it). With `fields` and
        `household_fields`, only those fields are read (household_id and id always)."""
        if fields is not None:
            fields = list(dict.fromkeys([*fields, "household_id"]))
        if household_fields is not None:
            household_fields = list(dict.fromkeys([*household_fields, "id"]))
        for name in self._documents_for("residents"):
            doc = self.documents[name]
            households = doc.records("households", household_fields)
            for rec in doc.records("residents", fields).values():
                household = households.get(str(rec.get("household_id")))
                if household is not None:
                    yield rec, household
