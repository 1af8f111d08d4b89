"""支援措置 that arrive, and block data that grows old.

Two boxes serve 聖籠町. A third party gets A's 住民票 on both. Then a block on A is
decided: box 1 syncs it, box 2 is offline. Box 1 refuses the next request at once; box 2
cannot know, so it goes on issuing — until its block data passes the town's limit, after
which it refuses everything for anyone but the person. That window is the limit's price,
which is why the limit is a town setting and block data travels first.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from test_issuance_town import (
    ADVERSARY,
    NOW,
    A,
    context,
    household_block,
    person_block,
    request_for,
    town_data,
)

from shared.issuance.blocks import is_adversary
from shared.issuance.context import IssuanceContext, Policy
from shared.issuance.decisions import Outcome, decide
from shared.issuance.requests import Applicant, DocumentKind, RequesterKind

R = RequesterKind
Doc = DocumentKind


def test_a_block_that_arrives_refuses_the_next_request_on_every_box_that_synced_it() -> None:
    before = town_data()
    third_party = request_for(R.THIRD_PARTY, Doc.JUMINHYO)
    box1 = context(before, blocks_age=timedelta(minutes=5))
    box2 = context(before, blocks_age=timedelta(minutes=5))
    assert decide(third_party, box1).issued and decide(third_party, box2).issued

    # The block is decided at the town hall and reaches box 1 (synced ten minutes later).
    block = person_block("A", start=NOW.date())
    later = NOW + timedelta(minutes=10)
    box1 = context(before.with_blocks((*before.blocks, block)), now=later, blocks_age=timedelta(0))
    refused = decide(third_party, box1)
    assert refused.outcome is Outcome.REFUSE
    assert refused.refusal is not None and refused.refusal.code == "block_protected"
    for requester in (R.PROXY, R.PROFESSIONAL, R.OFFICIAL, R.HOUSEHOLD, R.LEGAL_REPRESENTATIVE):
        assert not decide(request_for(requester, Doc.JUMINHYO), box1).issued, requester
    for doc in (Doc.FUHYO, Doc.KAZEI, Doc.KISAI_JIKO):
        assert not decide(request_for(R.PROXY, doc), box1).issued, doc
    assert decide(request_for(R.SELF, Doc.JUMINHYO), box1).issued  # the person, photo ID

    # Box 2 is offline and has not seen the block: its data is 10 minutes old, within the
    # limit, so it cannot tell — that is the window the freshness limit bounds.
    box2 = context(before, now=later, blocks_age=timedelta(minutes=15))
    assert decide(third_party, box2).issued
    # Once its block data is older than the limit it refuses everyone but the person.
    past_limit = Policy().block_freshness_limit + timedelta(minutes=1)
    box2 = context(before, now=NOW + past_limit, blocks_age=past_limit)
    stale = decide(third_party, box2)
    assert stale.refusal is not None and stale.refusal.code == "blocks_stale"
    assert decide(request_for(R.SELF, Doc.JUMINHYO), box2).issued


def test_block_data_past_the_limit_refuses_every_non_self_requester() -> None:
    strict = Policy(block_freshness_limit=timedelta(hours=4))
    ctx = context(policy=strict, blocks_age=timedelta(hours=5))
    for requester in RequesterKind:
        decision = decide(request_for(requester, Doc.JUMINHYO), ctx)
        if requester is R.SELF:
            assert decision.issued
        else:
            assert decision.refusal is not None and decision.refusal.code == "blocks_stale"
            assert "5時間" in decision.refusal.reason and "4時間" in decision.refusal.reason


def test_block_covers_the_johyo() -> None:
    ctx = context(town_data((person_block("F"),)))
    assert not decide(request_for(R.THIRD_PARTY, Doc.JOHYO), ctx).issued
    assert decide(request_for(R.SELF, Doc.JOHYO), ctx).issued


def test_household_block_lets_each_protected_member_have_the_household_copy() -> None:
    ctx = context(town_data((household_block("H1"),)))
    request = request_for(R.HOUSEHOLD, Doc.JUMINHYO, whole_household=True)
    assert decide(request, ctx).issued
    person_only = context(town_data((person_block("A"),)))
    refused = decide(request, person_only)  # B is not protected by A's block
    assert refused.refusal is not None and refused.refusal.code == "block_protected"


def test_block_ending_or_not_yet_started_does_not_apply() -> None:
    ended = person_block("A", start=date(2025, 4, 1), end=NOW.date() - timedelta(days=1))
    future = person_block("A", start=NOW.date() + timedelta(days=1), block_id="NEXT")
    ctx = context(town_data((ended, future)))
    assert decide(request_for(R.THIRD_PARTY, Doc.JUMINHYO), ctx).issued


def test_adversary_recognised_by_variant_name_or_kana_and_birth_date() -> None:
    block = person_block("A")
    assert is_adversary(ADVERSARY, block)
    assert is_adversary(Applicant("田中 悪夫"), block)  # half-width space, no birth date
    variant = replace(block, adversary_name="齋藤　一", adversary_kana="")
    assert is_adversary(Applicant("斎藤 一", birth_date=ADVERSARY.birth_date), variant)  # 異体字
    assert is_adversary(Applicant("?", "たなか あくお", ADVERSARY.birth_date), block)
    assert not is_adversary(Applicant(ADVERSARY.name, birth_date=date(1999, 1, 1)), block)
    assert not is_adversary(Applicant("鈴木　一郎", "スズキ　イチロウ"), block)


def test_adversary_is_refused_even_as_self_or_household_member() -> None:
    ctx: IssuanceContext = context(town_data((household_block("H1"),)))
    for requester in (R.SELF, R.HOUSEHOLD):
        claimed = request_for(requester, Doc.JUMINHYO).applicant
        impostor = Applicant(
            ADVERSARY.name, ADVERSARY.kana, ADVERSARY.birth_date, resident_id=claimed.resident_id
        )
        decision = decide(request_for(requester, Doc.JUMINHYO, applicant=impostor), ctx)
        assert decision.refusal is not None and decision.refusal.code == "block_adversary"
        assert "支援" not in decision.refusal.tell_applicant
    assert A.id in ctx.data.blocks[0].protected_ids
