"""A replica's own sealed checkpoint of a town: where the next opening starts.

Opening a town replays its sync log (`SyncReplica.open_town`). After a full import the
log holds the hub's large update blobs, and importing Loro updates one by one costs
seconds where importing a snapshot costs milliseconds. So a reader that has opened a
town keeps, in its own store, a Loro snapshot of every document of the town together
with what it covers, and the next opening imports that snapshot plus only the blobs the
log gained since.

Stored as one blob of the usual envelope (`shared.blobs`) under
`("sync", "checkpoint", town)`: sealed to the town's current public key, signed by the
replica's own writer key; nothing of it is readable at rest. The plaintext is

    JSON header line  {"format": 1, "town", "covers": {writer: seq}, "digest",
                       "documents": [[name, length], ...]}
    then the documents' snapshot bytes, concatenated in that order

`covers` says, per writer, through which seq every blob is inside the snapshot; `digest`
is a BLAKE2b hash of the log entries it covers as the log indexes them (each slot and
its blob id, and the compaction floor). A checkpoint is used only if it opens with the
town's keys, is signed by this replica's writer, names the town, and its digest still
matches the log: a tampered, foreign or stale one (the log was compacted or trimmed
since, or a slot now holds another blob) is ignored and the town is replayed from the
log, never trusted. The state is the same either way: Loro imports are idempotent and
commutative, so snapshot + later blobs equals replaying every blob.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import nacl.hash
from nacl.encoding import HexEncoder

from shared.blobs import BlobError, BlobFields, open_blob, seal_blob
from shared.crypto import KeyRing, TownPublic
from shared.storage import Storage, StorageKey
from shared.sync import identity
from shared.sync.identity import Identity
from shared.sync.log import BlobLog

log = logging.getLogger(__name__)

FORMAT = 1
MAX_PLAINTEXT = 1024 * 1024 * 1024  # a whole town's snapshots; the header states the size


def checkpoint_key(town: str) -> StorageKey:
    return ("sync", "checkpoint", town)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    town: str
    covers: dict[str, int]
    documents: dict[str, bytes]

    def covered(self, writer: str, seq: int) -> bool:
        return seq <= self.covers.get(writer, 0)


def log_digest(blob_log: BlobLog, town: str, covers: Mapping[str, int]) -> str:
    """The log entries a checkpoint covering `covers` was made from, as one hash."""
    hasher = nacl.hash.blake2b  # one-shot: feed a single joined buffer
    parts = [town, json.dumps(blob_log.floor(town), sort_keys=True)]
    for ref in blob_log.refs(town):
        if ref.seq <= covers.get(ref.writer, 0):
            parts.append(f"{ref.writer}:{ref.seq}:{ref.blob_id}")
    return hasher("\n".join(parts).encode(), digest_size=32, encoder=HexEncoder).decode()


def seal_checkpoint(
    blob_log: BlobLog,
    writer: Identity,
    public: TownPublic,
    covers: Mapping[str, int],
    documents: Mapping[str, bytes],
) -> bytes:
    town = public.town
    names = sorted(documents)
    header = {
        "format": FORMAT,
        "town": town,
        "covers": dict(sorted(covers.items())),
        "digest": log_digest(blob_log, town, covers),
        "documents": [[name, len(documents[name])] for name in names],
    }
    plaintext = b"".join(
        [json.dumps(header, sort_keys=True).encode(), b"\n", *(documents[n] for n in names)]
    )
    fields = BlobFields(f"{town}/checkpoint", writer.writer_id, 0)
    return seal_blob(plaintext, fields, public, writer.signing_key, max_plaintext=MAX_PLAINTEXT)


def save_checkpoint(storage: Storage, town: str, blob: bytes) -> None:
    storage.save(checkpoint_key(town), blob)


def read_checkpoint(
    storage: Storage, blob_log: BlobLog, keyring: KeyRing, writer: Identity
) -> Checkpoint | None:
    """The town's checkpoint if it is this writer's, for this town, and still matches the
    log; otherwise None (and why, in the log: never any content)."""
    town = keyring.town
    blob = storage.load(checkpoint_key(town))
    if blob is None:
        return None
    try:
        return _parse(blob, blob_log, keyring, writer)
    except (BlobError, ValueError, KeyError, TypeError) as exc:
        log.warning("checkpoint of %s ignored: %s", town, exc)
        return None


def _parse(blob: bytes, blob_log: BlobLog, keyring: KeyRing, writer: Identity) -> Checkpoint | None:
    town = keyring.town
    header, plaintext = open_blob(blob, keyring, identity.lookup(), max_plaintext=MAX_PLAINTEXT)
    if header.writer_id != writer.writer_id or header.document != f"{town}/checkpoint":
        raise ValueError("not this replica's checkpoint of the town")
    line, _, body = plaintext.partition(b"\n")
    meta = json.loads(line)
    if meta["format"] != FORMAT or meta["town"] != town:
        raise ValueError("unknown format or another town")
    covers = {str(w): int(s) for w, s in meta["covers"].items()}
    if meta["digest"] != log_digest(blob_log, town, covers):
        log.info("checkpoint of %s is stale (the log changed below it); replaying", town)
        return None
    documents: dict[str, bytes] = {}
    offset = 0
    for name, length in meta["documents"]:
        documents[str(name)] = body[offset : offset + int(length)]
        offset += int(length)
    if offset != len(body):
        raise ValueError("document lengths do not add up")
    return Checkpoint(town, covers, documents)
