"""The hub's signed notices: only the authority's count, newer replaces older, they travel
through relays that hold no key, and a box's as-of time and warnings come from them — a
box holding a statement whose blobs it lacks is starved, and says so in Japanese."""

from __future__ import annotations

import dataclasses

from edge.replica import BoxReplica
from shared.crypto import KeyRing, TownKeys
from shared.registry import Upsert
from shared.storage import MemoryStorage
from shared.sync.identity import Identity
from shared.sync.messages import decode, encode
from shared.sync.notices import AS_OF, STALE_AFTER_S, fresh_n, freshness, sign_notice
from shared.sync.protocol import Initiator, Responder, State
from shared.sync.replica import SyncReplica

TOWN = "15307"
KEYS = TownKeys.generate(TOWN)
HUB = Identity.generate()


def replica(**kw: object) -> SyncReplica:
    return SyncReplica(MemoryStorage(), Identity.generate(), authority=HUB.writer_id, **kw)  # type: ignore[arg-type]


def session(a: SyncReplica, b: SyncReplica) -> None:
    initiator = Initiator(a.log, a.writer, (TOWN,))
    responder = Responder(b.log, b.writer.writer_id)
    message = initiator.start()
    while message is not None:
        message = initiator.receive(decode(encode(responder.handle(decode(encode(message)), 0))))
    assert initiator.state is State.DONE, initiator.error


def hub_with_import(as_of: str) -> SyncReplica:
    hub = SyncReplica(
        MemoryStorage(), HUB, keyrings=[KeyRing(TOWN, [KEYS])], authority=HUB.writer_id
    )
    hub.edit(TOWN, [Upsert("support_blocks", "b1", {"r": 1}, {"r": 1})])
    announce(hub, as_of)
    return hub


def announce(hub: SyncReplica, as_of: str, issued: float = 1_800_000_000.0) -> None:
    covers = {HUB.writer_id: hub.log.next_seq(TOWN, HUB.writer_id) - 1}
    notice = sign_notice(HUB, AS_OF, TOWN, fresh_n(), as_of=as_of, covers=covers, issued=issued)
    assert hub.log.accept_notices([notice], [TOWN]) == [notice]


def test_as_of_statements_travel_through_a_keyless_relay_and_date_the_data() -> None:
    hub = hub_with_import("2026-11-26T02:00:00+09:00")
    relay, box = replica(), replica()
    session(relay, hub)
    session(box, relay)  # the hub is not involved: the relay forwards what it cannot read
    assert box.log.as_of_held(TOWN) == hub.log.notices.get(TOWN, AS_OF)
    seen = freshness(box.log.storage, TOWN, now=1_800_000_100.0)
    assert seen.as_of == "2026-11-26T02:00:00+09:00" and not seen.warned


def test_a_box_given_the_statement_but_not_the_blobs_is_starved_and_warns() -> None:
    hub = hub_with_import("2026-11-25T02:00:00+09:00")
    box = replica()
    session(box, hub)
    hub.edit(TOWN, [Upsert("support_blocks", "b2", {"r": 2}, {"r": 2})])
    announce(hub, "2026-11-26T02:00:00+09:00")
    # A peer passes the newer statement on but withholds the blob it covers.
    newest = hub.log.notices.get(TOWN, AS_OF)
    assert newest is not None
    box.log.accept_notices([newest], [TOWN])
    seen = freshness(box.log.storage, TOWN, now=1_800_000_100.0)
    assert seen.starved and seen.as_of == "2026-11-25T02:00:00+09:00"
    assert seen.hub_as_of == "2026-11-26T02:00:00+09:00"
    label, warning = BoxReplica(box.log.storage).as_of_line(TOWN, now=1_800_000_100.0)
    assert label == "令和8年11月25日 2時00分"
    assert "ハブには令和8年11月26日 2時00分時点のデータがありますが" in warning
    session(box, hub)  # the blob arrives: no longer starved
    assert not freshness(box.log.storage, TOWN, now=1_800_000_100.0).starved
    # No statement for longer than the nightly import allows: stale, also said.
    late = 1_800_000_000.0 + STALE_AFTER_S + 3600
    assert freshness(box.log.storage, TOWN, now=late).stale
    assert "時間届いていません" in BoxReplica(box.log.storage).as_of_line(TOWN, now=late)[1]


def test_only_the_authoritys_newer_well_signed_notices_count() -> None:
    hub = hub_with_import("2026-11-26T02:00:00+09:00")
    box = replica()
    current = hub.log.notices.get(TOWN, AS_OF)
    assert current is not None
    impostor = Identity.generate()
    forged = sign_notice(impostor, AS_OF, TOWN, current.n + 1, as_of="2099-01-01", covers={})
    tampered = dataclasses.replace(current, body={**current.body, "as_of": "2099-01-01"})
    older = sign_notice(HUB, AS_OF, TOWN, current.n - 1, as_of="2000-01-01", covers={})
    assert box.log.accept_notices([current], [TOWN]) == [current]
    assert box.log.accept_notices([forged, tampered, older], [TOWN]) == []
    assert box.log.notices.ignored == 3
    assert box.log.notices.get(TOWN, AS_OF) == current
    # A replica that pinned no authority keeps none.
    unpinned = SyncReplica(MemoryStorage(), Identity.generate())
    assert unpinned.log.accept_notices([current], [TOWN]) == []
