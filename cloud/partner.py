"""The partner copy of a town that keeps 個人番号 out of its partners' replicas.

With the town's option (`renkei import --partner-without-my-number CODE`), partner boxes
hold the scope "CODE.partner" instead of the town itself (`shared.sync.scopes`): the same
documents, every 個人番号 emptied, kept in step here at the end of each import (and of
each compaction) by comparing record by record — so the copy never holds a number, not
even in its history, and an interrupted run is simply redone by the next one.

Edits a box makes to the town reach the partner copy at the next import (partners see
them at most a night late); the partner copy itself is only ever written by the hub.
"""

from __future__ import annotations

from cloud.custody import partner_copy_marker
from cloud.replica import HubReplica
from shared.records import Record
from shared.storage import Storage
from shared.sync.log import BlobRef
from shared.sync.scopes import partner_scope

MY_NUMBER = "my_number"


def has_partner_copy(storage: Storage, town: str) -> bool:
    return storage.load(partner_copy_marker(town)) is not None


def stripped(record: Record) -> Record:
    return {**record, MY_NUMBER: ""} if MY_NUMBER in record else dict(record)


def mirror(hub: HubReplica, town: str) -> list[BlobRef]:
    """Bring the town's partner copy in step with the town; returns the blobs written."""
    main = hub.registry(town)
    scope = partner_scope(town)
    copy = hub.registry(scope)
    deltas: dict[str, bytes] = {}
    for name, document in sorted(main.documents.items()):
        target = copy.document(name)
        before = target.version()
        changed = False
        for table in document.tables():
            theirs = target.records(table)
            mine = {rid: stripped(r) for rid, r in document.records(table).items()}
            for rid, record in mine.items():
                old = theirs.get(rid)
                if old == record:
                    continue
                fields = {k: v for k, v in record.items() if old is None or old.get(k) != v}
                if old is not None and set(old) - set(record):
                    target.delete(table, rid)  # a field went away: write the record anew
                    fields = record
                target.set_fields(table, rid, fields)
                changed = True
            for rid in set(theirs) - set(mine):
                target.delete(table, rid)
                changed = True
        if changed:
            target.commit("partner copy")
            deltas[name] = target.export_updates(before)
    return hub.publish(scope, deltas) if deltas else []
