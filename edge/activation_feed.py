"""The box's side of online emergency records: fetch what deputies posted to the hub for
this host town (cloud/emergency.py), verify each exactly as a typed code is verified, and

    activation     named for THIS box: verified, then kept as pending until a host
                   supervisor accepts it on /activation with one click (覚書 §2: a host
                   supervisor accepts; nobody types the code); one for another box of
                   the town is skipped
    revocation     applied at once (it only takes access away); a partner town no valid
                   activation holds any more is sealed — its sessions end, its worker
                   stops (`edge.emergency.seal_expired`)
    ratification   applied at once: the break-glass shows as 承認済

Each record id is handled once: ids seen are kept under (box, "emergency-feed", "seen",
id), so a replayed record — the hub serving it again, or posted again — is ignored; and
the registry itself refuses an activation that was revoked or has expired. A forged or
altered record fails the signature check, is refused and audited (activation_refused)
like a mistyped forged code. Nothing here trusts the hub.

    (box, "emergency-feed", "seen", id)      when it was handled, and how
    (box, "emergency-feed", "pending", id)   a verified activation awaiting a supervisor

Started from the box's lifespan (`ActivationFeed.start`); polls every `interval_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
import nacl.hash
from nacl.encoding import RawEncoder

from edge.emergency import seal_expired
from shared.activation import (
    AcceptedActivation,
    Activation,
    ActivationError,
    BreakGlass,
    Ratification,
    Revocation,
    box_tag,
    parse_record,
)
from shared.background import BackgroundLoop

if TYPE_CHECKING:
    from edge.app import Box

log = logging.getLogger(__name__)

PREFIX = ("box", "emergency-feed")


def _record_id(data: Any) -> str:
    """The record's own id, or for something that does not parse a digest of it (so it
    is refused once, not at every round)."""
    try:
        return str(parse_record(data).id.hex())
    except (ActivationError, AttributeError):
        text = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        return "x" + nacl.hash.blake2b(text, digest_size=8, encoder=RawEncoder).hex()


class ActivationFeed(BackgroundLoop):
    def __init__(self, box: Box, interval_s: float = 3.0) -> None:
        self.box = box
        self.interval_s = interval_s

    # ------------------------------------------------------------------ pending

    def pending(self) -> list[tuple[str, AcceptedActivation]]:
        """Verified online activations awaiting a host supervisor: (id, what accepting
        would store). One that no longer verifies (expired, revoked) is dropped."""
        items = []
        for key, raw in self.box.storage.load_range((*PREFIX, "pending")):
            try:
                items.append((key[-1], self.box.activations.check(json.loads(raw))))
            except (ActivationError, ValueError):
                self.box.storage.remove(key)
        return items

    def take(self, record_id: str, supervisor: str) -> AcceptedActivation:
        """A host supervisor accepts a pending online activation."""
        key = (*PREFIX, "pending", record_id)
        raw = self.box.storage.load(key)
        if raw is None:
            raise LookupError(record_id)
        accepted = self.box.activations.accept(json.loads(raw), host_supervisor=supervisor)
        self.box.storage.remove(key)
        return accepted

    # ------------------------------------------------------------------ fetching

    async def fetch_once(self, client: httpx.AsyncClient) -> list[str]:
        """One round: returns the ids handled this time."""
        town = self.box.config.town_code
        response = await client.get(f"/api/emergency/{town}")
        response.raise_for_status()
        handled = []
        for data in response.json().get("records", []):
            # The id is computed here from what was signed, never taken from the hub.
            record_id = _record_id(data)
            if self._seen(record_id):
                continue
            outcome = await asyncio.to_thread(self._handle, data)
            if outcome == "later":
                continue
            self.box.storage.save(
                (*PREFIX, "seen", record_id), json.dumps({"outcome": outcome}).encode()
            )
            handled.append(record_id)
        if handled:
            await seal_expired(self.box)
        return handled

    def _seen(self, record_id: str) -> bool:
        return self.box.storage.load((*PREFIX, "seen", record_id)) is not None

    def _handle(self, data: Any) -> str:
        registry = self.box.activations
        try:
            record = parse_record(data)
            if isinstance(record, Activation):
                if record.host_box_tag != box_tag(registry.host_town, registry.host_box):
                    return "other_box"
                if record.not_before > registry.effective_now():
                    return "later"  # sent ahead of its start: handled once it starts
                registry.check(record)
                self.box.storage.save(
                    (*PREFIX, "pending", record.id.hex()),
                    json.dumps(record.to_json(), sort_keys=True).encode(),
                )
                log.info("online activation %s for %s awaits a supervisor", record.id.hex(),
                         record.stricken_town)  # fmt: skip
                return "pending"
            if isinstance(record, Revocation):
                registry.revoke(record)
                self.box.storage.remove((*PREFIX, "pending", record.target.hex()))
                return "revoked"
            if isinstance(record, Ratification):
                registry.ratify(record)
                return "ratified"
            return "skipped" if isinstance(record, BreakGlass) else "unknown"
        except ActivationError as exc:
            log.warning("online emergency record %s refused: %s", _record_id(data), exc)
            return "refused"

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        url = self.box.config.hub_url
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while True:
                try:
                    await self.fetch_once(client)
                except (httpx.HTTPError, ValueError) as exc:
                    log.debug("emergency feed: hub not reachable: %s", exc)
                except Exception:  # keep fetching; the next round tries again
                    log.exception("emergency feed failed")
                await asyncio.sleep(self.interval_s)

