"""Clerk changes a supervisor makes on the box, kept until the hub has them.

The town's worker makes the credential record or the signed revocation (it holds the
town's keys); the front stores it here and in the replica at once, so the change works
on this box even with the hub unreachable (case 1), and sends it to the hub before each
pull (cloud/clerks_api.py). Storage keys (no secret in them — a record's keys are
wrapped under the clerk's password):

    (town, "clerk-outbox", login)   {"record": …} or {"revocation": …}, until the hub took it

A pull from the hub leaves alone the credentials of clerks with an entry here
(edge/replica.py), so a pull racing a change cannot undo it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from shared.storage import Storage, StorageKey

log = logging.getLogger(__name__)

OUTBOX = "clerk-outbox"


def _key(town: str, login: str) -> StorageKey:
    return (town, OUTBOX, login)


class ClerkOutbox:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def store_record(self, town: str, record: dict[str, Any]) -> None:
        login = str(record["login_id"])
        raw = json.dumps(record, ensure_ascii=False).encode()
        self.storage.save_many(
            [
                ((town, "credential", login), raw),
                (_key(town, login), json.dumps({"record": record}, ensure_ascii=False).encode()),
            ]
        )

    def store_revocation(self, town: str, statement: dict[str, Any]) -> None:
        login = str(statement["login_id"])
        self.storage.save(_key(town, login), json.dumps({"revocation": statement}).encode())
        self.storage.remove((town, "credential", login))

    def pending(self, town: str) -> dict[str, str]:
        """login → "record" | "revocation" not yet at the hub."""
        return {
            key[2]: next(iter(json.loads(raw)))
            for key, raw in self.storage.load_range((town, OUTBOX))
        }

    def push(self, client: httpx.Client, towns: list[str]) -> int:
        """Send every pending change to the hub; returns how many it took. A change the
        hub refuses (a newer record there, a rotated key epoch) is dropped and logged."""
        sent = 0
        for town in towns:
            for key, raw in self.storage.load_range((town, OUTBOX)):
                entry = json.loads(raw)
                if "record" in entry:
                    url = f"/api/replica/{town}/credentials/{key[2]}"
                    response = client.post(url, json=entry["record"])
                else:
                    response = client.post(
                        f"/api/replica/{town}/revocations", json=entry["revocation"]
                    )
                if response.status_code >= 500:
                    response.raise_for_status()
                if response.status_code != 200:
                    log.warning(
                        "hub refused the clerk change %s/%s: %s", town, key[2], response.text[:200]
                    )
                else:
                    sent += 1
                self.storage.remove(key)
        return sent
