"""支援措置 rules and the freshness gate: the checks whose failure can cost a life.

A 支援措置 is not a blanket block (BRIEF §4). For any subject of the request covered by
an active block:

- the named 相手方 is refused, whoever they claim to be (本人, 世帯員, agent, 士業 …);
- third parties, agents, 士業, 公用 and postal requests are refused;
- the protected person gets a copy at the counter with a photo ID — and a household
  block lists every member, so each of them may ask for the household's copy.

It covers every document about the person, including 除票 and 戸籍の附票 (a block on a
removed person still protects the 除票) and tax and insurance documents, which print the
current address just the same.

The freshness gate: a box that missed a new block would hand the address to the very
person it hides it from, so when this box's block data was last confirmed longer ago
than the town's limit, anything for someone other than the person is refused.

`decisions.decide` calls these functions through this module's namespace, so a test can
replace `check_request` and watch the table-driven test turn red (the mutation check).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from shared.model import Resident, SupportBlock
from shared.textnorm import kana_key, name_key

from .context import IssuanceContext
from .refusals import Refusal, refusal
from .requests import Applicant, Channel, Identity, IdentityMethod, Request, RequesterKind

PROTECTED_MAY_ASK = frozenset({RequesterKind.SELF, RequesterKind.HOUSEHOLD})


def is_adversary(applicant: Applicant, block: SupportBlock) -> bool:
    """Does the applicant look like the block's 相手方? Names compare by their folded
    search keys (斎 = 齋, variant selectors ignored), kana by reading; a missing birth
    date on either side does not clear the applicant: a wrong match costs a refusal, a
    missed one can cost a life."""
    same_name = bool(applicant.name) and name_key(applicant.name) == name_key(block.adversary_name)
    same_kana = bool(applicant.kana and block.adversary_kana) and kana_key(
        applicant.kana
    ) == kana_key(block.adversary_kana)
    if not (same_name or same_kana):
        return False
    if applicant.birth_date is None or block.adversary_birth_date is None:
        return True
    return applicant.birth_date == block.adversary_birth_date


def covering_blocks(subjects: Sequence[Resident], ctx: IssuanceContext) -> list[SupportBlock]:
    day = ctx.today
    seen: dict[str, SupportBlock] = {}
    for person in subjects:
        for block in ctx.data.active_blocks(person.id, day):
            seen[block.id] = block
    return list(seen.values())


def check_request(
    request: Request, subjects: Sequence[Resident], ctx: IssuanceContext
) -> Refusal | None:
    blocks = covering_blocks(subjects, ctx)
    if not blocks:
        return None
    if any(is_adversary(request.applicant, b) for b in blocks):
        return refusal("block_adversary")
    if not is_protected_side(request.requester, request.applicant.resident_id, blocks):
        return refusal("block_protected")
    if not protected_handover(request.channel, request.identity):
        return refusal("block_self_needs_photo")
    return None


def is_protected_side(
    requester: RequesterKind, applicant_id: str, blocks: Sequence[SupportBlock]
) -> bool:
    """The applicant is themself protected by every block in question (a household block
    lists each member) and asks as 本人 or 世帯員 — not as anybody's agent."""
    return (
        requester in PROTECTED_MAY_ASK
        and bool(applicant_id)
        and all(applicant_id in b.protected_ids for b in blocks)
    )


def protected_handover(channel: Channel, identity: Identity) -> bool:
    """At the counter, with a photo ID: never by post."""
    has_photo = identity.method is IdentityMethod.PHOTO_ID and any(
        d.has_photo for d in identity.documents
    )
    return channel is Channel.COUNTER and has_photo


def check_freshness(request: Request, ctx: IssuanceContext) -> Refusal | None:
    if request.requester is RequesterKind.SELF or not ctx.blocks_stale:
        return None
    age = ctx.now - ctx.blocks_checked_at
    return refusal(
        "blocks_stale", age=_duration(age), limit=_duration(ctx.policy.block_freshness_limit)
    )


def newly_covering(
    subject_ids: Sequence[str], blocks: Sequence[SupportBlock], known: Sequence[str], day: date
) -> list[SupportBlock]:
    """Blocks active on `day` for any subject that are not among `known` block ids — for
    reconciliation: blocks the issuing box did not have."""
    return [
        b
        for b in blocks
        if b.id not in known and b.active_on(day) and set(b.protected_ids) & set(subject_ids)
    ]


def _duration(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return f"{hours // 24}日{hours % 24}時間"
    return f"{hours}時間"
