"""The box sends the heads of the audit chains it holds to the hub, signed with its own
key, so a cut tail or a rolled-back log on the box is named by `renkei audit verify`
(cloud/anchors.py has the wire format). Heads are cleartext already ((town,
"audit-head", writer) holds only writer, seq and a hash), so a box with every town
sealed can still anchor.

Started from the box's lifespan; every `interval_s` it reads the heads and posts them
when they changed since the last statement the hub took. The hub being away only delays
anchoring (the next round tries again); the hub takes statements only from an enrolled
box (`renkei enroll`), so an unenrolled box is refused (logged once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
from nacl.signing import SigningKey

from cloud.anchors import CONTEXT, canonical
from shared.audit import HEAD, AuditError, ChainHead
from shared.background import BackgroundLoop
from shared.storage import Storage

log = logging.getLogger(__name__)


def chain_heads(storage: Storage, towns: list[str]) -> dict[str, list[dict[str, Any]]]:
    heads: dict[str, list[dict[str, Any]]] = {}
    for town in towns:
        items = []
        for _, raw in storage.load_range((town, HEAD)):
            try:
                items.append(ChainHead.from_json(json.loads(raw)).to_json())
            except (ValueError, AuditError):
                continue
        if items:
            heads[town] = sorted(items, key=lambda h: h["writer"])
    return heads


def signed_statement(
    box_id: str, key: SigningKey, heads: dict[str, list[dict[str, Any]]], at: float
) -> dict[str, Any]:
    statement = {"v": 1, "box": box_id, "at": at, "heads": heads}
    signature = key.sign(CONTEXT + canonical(statement)).signature
    return {
        "statement": statement,
        "key": bytes(key.verify_key).hex(),
        "signature": signature.hex(),
    }


class AnchorReporter(BackgroundLoop):
    def __init__(
        self,
        storage: Storage,
        towns: Any,
        box_id: str,
        key: SigningKey,
        hub_url: str,
        interval_s: float = 5.0,
    ) -> None:
        self.storage = storage
        self.towns = towns  # () -> the towns whose chains the box holds
        self.box_id = box_id
        self.key = key
        self.hub_url = hub_url
        self.interval_s = interval_s
        self._last: dict[str, list[dict[str, Any]]] | None = None
        self._refusal = ""

    async def report_once(self, client: httpx.AsyncClient) -> bool:
        """Post the heads if they changed; True when the hub took a new statement."""
        heads = await asyncio.to_thread(chain_heads, self.storage, list(self.towns()))
        if not heads or heads == self._last:
            return False
        body = signed_statement(self.box_id, self.key, heads, time.time())
        response = await client.post("/api/audit/anchors", json=body)
        if response.status_code != 200:
            # Said once per change of answer: an unenrolled box is refused every round.
            refusal = f"{response.status_code} {response.text[:200]}"
            level = logging.DEBUG if refusal == self._refusal else logging.WARNING
            log.log(level, "hub refused the audit anchors: %s", refusal)
            self._refusal = refusal
            return False
        self._refusal = ""
        for conflict in response.json().get("conflicts", []):
            log.error("hub holds another head for an audit chain here: %s", conflict)
        self._last = heads
        return True

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.hub_url, timeout=30) as client:
            while True:
                try:
                    await self.report_once(client)
                except httpx.HTTPError as exc:
                    log.debug("audit anchors: hub not reachable: %s", exc)
                except Exception:  # keep reporting; the next round tries again
                    log.exception("audit anchoring failed")
                await asyncio.sleep(self.interval_s)

