"""Scopes: a town's partner copy travels as a log of its own.

A town may keep 個人番号 out of its partners' replicas (BRIEF §3, "an option keeps 個人番号
out of partner replicas"). Its documents then exist twice in the federation's log:

    15405              the town's documents, in full — held by the hub and the town's own
                       box only
    15405.partner      the same documents with every 個人番号 emptied, kept in step by
                       the hub (`cloud.partner`) — what partner boxes hold and relay

The partner copy is sealed to the same town keys (a clerk's key ring opens both) under
the scope's name, so its blobs, have-vectors, notices and compaction are those of a town
like any other; placement (who may sync which scope) is the responder's policy
(`cloud.sync_api.placement`).
"""

from __future__ import annotations

from shared.crypto import KeyRing, TownKeys

PARTNER_SUFFIX = ".partner"


def partner_scope(town: str) -> str:
    return town + PARTNER_SUFFIX


def is_partner_scope(scope: str) -> bool:
    return scope.endswith(PARTNER_SUFFIX)


def town_of(scope: str) -> str:
    """The town a scope belongs to ("15405.partner" → "15405")."""
    return scope[: -len(PARTNER_SUFFIX)] if is_partner_scope(scope) else scope


def scope_ring(ring: KeyRing, scope: str) -> KeyRing:
    """The town's key ring under a scope's name: the same keys, so the same clerks open
    it; a blob names its scope, and a ring opens only blobs of its own name."""
    if town_of(scope) != ring.town:
        raise ValueError(f"scope {scope!r} is not of town {ring.town!r}")
    if scope == ring.town:
        return ring
    return KeyRing(scope, [_renamed(keys, scope) for keys in ring])


def _renamed(keys: TownKeys, scope: str) -> TownKeys:
    # The private halves are not part of TownKeys' public surface on purpose; this is
    # the one place that re-labels them, without copying them anywhere else.
    return TownKeys(scope, keys.epoch, keys._sealing, keys._signing)
