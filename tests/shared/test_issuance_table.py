"""The table: every requester kind × document kind × item option × 支援措置 state.

The product is generated with itertools; each row's decision is compared with
`expected`, an independent statement of the rules written plainly here (it does not
import the rules it checks). The mutation test then switches the 支援措置 check off and
shows that exactly the block rows turn red — the table can fail where it claims to guard.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from test_issuance_town import (
    ADVERSARY,
    context,
    household_block,
    person_block,
    request_for,
    subject_for,
    town_data,
)

from shared.issuance import blocks as block_rules
from shared.issuance.context import IssuanceContext
from shared.issuance.decisions import Handover, Outcome, decide
from shared.issuance.requests import Applicant, DocumentKind, Item, Request, RequesterKind
from shared.model import SupportBlock

R = RequesterKind
Doc = DocumentKind


class BlockState(enum.Enum):
    NONE = "none"
    EXPIRED = "expired block"
    PERSON = "person block"
    HOUSEHOLD = "household block"
    ADVERSARY_ASKS = "the 相手方 asks"
    STALE_DATA = "block data past the limit"


ITEM_OPTIONS: tuple[frozenset[Item], ...] = (
    frozenset(),
    frozenset({Item.HEAD_AND_RELATIONSHIP}),
    frozenset({Item.HONSEKI}),
    frozenset({Item.JUMINHYO_CODE}),
    frozenset({Item.MY_NUMBER}),
    frozenset({Item.HEAD_AND_RELATIONSHIP, Item.HONSEKI, Item.JUMINHYO_CODE, Item.MY_NUMBER}),
)


@dataclass(frozen=True)
class Expect:
    outcome: Outcome
    code: str | None = None
    items: frozenset[Item] = frozenset()
    handover: Handover = Handover.NONE
    payable: int | None = None


def expected(requester: R, doc: Doc, items: frozenset[Item], state: BlockState) -> Expect:
    """The rules, stated plainly for the fixture town (all requests at the counter, with
    a photo ID and complete papers; subject A — or F, moved out, for the 除票)."""
    refuse = Outcome.REFUSE
    if state is BlockState.ADVERSARY_ASKS:
        return Expect(refuse, "block_adversary")
    if state is BlockState.PERSON and requester is not R.SELF:
        return Expect(refuse, "block_protected")
    if state is BlockState.HOUSEHOLD and requester not in (R.SELF, R.HOUSEHOLD):
        return Expect(refuse, "block_protected")
    if state is BlockState.STALE_DATA and requester is not R.SELF:
        return Expect(refuse, "blocks_stale")

    resident_docs = (Doc.JUMINHYO, Doc.JOHYO, Doc.KISAI_JIKO)
    if doc in resident_docs:
        offered = set(Item)
    elif doc is Doc.FUHYO:
        offered = {Item.HONSEKI}
    else:
        offered = set()
    if not items <= offered:
        return Expect(refuse, "items_not_offered")
    if doc in (Doc.MENJO, Doc.INKAN, Doc.RISAI):
        return Expect(Outcome.INTAKE_ONLY, "intake_only_document")

    tax_docs = (Doc.KAZEI, Doc.HIKAZEI, Doc.NOZEI, Doc.KEIJIDOSHA_KEIZOKU)
    nhi_docs = (Doc.SHIKAKU_KAKUNIN, Doc.SHIKAKU_OSHIRASE)
    if requester in (R.THIRD_PARTY, R.PROFESSIONAL) and (doc in tax_docs or doc in nhi_docs):
        return Expect(refuse, "requester_not_entitled")
    if requester is R.OFFICIAL and (doc is Doc.KEIJIDOSHA_KEIZOKU or doc in nhi_docs):
        return Expect(refuse, "requester_not_entitled")

    if doc is Doc.HIKAZEI:  # A is taxed in 2026
        return Expect(refuse, "tax_taxable")
    if doc is Doc.SHIKAKU_OSHIRASE:  # A has no マイナ保険証
        return Expect(refuse, "nhi_no_my_number_insurance")

    restricted = items & {Item.MY_NUMBER, Item.JUMINHYO_CODE}
    if restricted and requester in (R.THIRD_PARTY, R.PROFESSIONAL, R.OFFICIAL):
        return Expect(refuse, "restricted_items")
    if restricted and requester is R.PROXY:
        handover = Handover.POST_REGISTERED_ADDRESS
    else:
        handover = Handover.COUNTER

    if requester is R.OFFICIAL or doc is Doc.KEIJIDOSHA_KEIZOKU:
        payable = 0
    else:
        payable = {Doc.SHIKAKU_KAKUNIN: 0}.get(doc, 300)
    return Expect(Outcome.ISSUE, None, items, handover, payable)


def _case(
    requester: R, doc: Doc, items: frozenset[Item], state: BlockState
) -> tuple[Request, IssuanceContext]:
    subject = subject_for(doc)
    blocks: tuple[SupportBlock, ...] = ()
    if state is BlockState.EXPIRED:
        blocks = (person_block(subject.id, start=date(2024, 4, 1), end=date(2025, 3, 31)),)
    elif state in (BlockState.PERSON, BlockState.ADVERSARY_ASKS):
        blocks = (person_block(subject.id),)
    elif state is BlockState.HOUSEHOLD:
        blocks = (household_block(subject.household_id),)
    blocks_age = timedelta(hours=30) if state is BlockState.STALE_DATA else timedelta(hours=1)
    ctx = context(town_data(blocks), blocks_age=blocks_age)
    applicant = None
    if state is BlockState.ADVERSARY_ASKS:
        # The 相手方 at the counter, claiming whatever the row's requester kind is.
        normal = request_for(requester, doc, items).applicant
        applicant = Applicant(
            ADVERSARY.name, ADVERSARY.kana, ADVERSARY.birth_date, resident_id=normal.resident_id
        )
    return request_for(requester, doc, items, applicant=applicant), ctx


ROWS = list(itertools.product(RequesterKind, DocumentKind, ITEM_OPTIONS, BlockState))


def mismatches() -> list[str]:
    wrong = []
    for requester, doc, items, state in ROWS:
        request, ctx = _case(requester, doc, items, state)
        decision = decide(request, ctx)
        want = expected(requester, doc, items, state)
        got = Expect(
            decision.outcome,
            decision.refusal.code if decision.refusal else None,
            decision.items,
            decision.handover,
            decision.fee.payable if decision.fee else None,
        )
        if got != want:
            names = sorted(i.value for i in items)
            row = f"{requester.value} × {doc.label} × {names} × {state.value}"
            wrong.append(f"{row}: got {got}, want {want}")
    return wrong


def test_table_covers_the_whole_product() -> None:
    assert len(ROWS) == len(RequesterKind) * len(DocumentKind) * len(ITEM_OPTIONS) * len(BlockState)
    assert len(ROWS) == 7 * 13 * 6 * 6


def test_every_row_matches_the_rules() -> None:
    wrong = mismatches()
    assert not wrong, f"{len(wrong)} of {len(ROWS)} rows differ:\n" + "\n".join(wrong[:40])


def test_every_refusal_has_reason_and_advice_in_japanese() -> None:
    for requester, doc, items, state in ROWS[::7]:
        request, ctx = _case(requester, doc, items, state)
        decision = decide(request, ctx)
        if decision.outcome is Outcome.ISSUE:
            assert decision.refusal is None
            continue
        assert decision.refusal is not None
        for text in (decision.refusal.reason, decision.refusal.tell_applicant):
            assert any("\u3040" <= ch <= "\u9fff" for ch in text), text


def test_block_refusals_never_tell_the_applicant_about_the_block() -> None:
    for requester, doc, items, state in ROWS:
        if state not in (BlockState.PERSON, BlockState.HOUSEHOLD, BlockState.ADVERSARY_ASKS):
            continue
        decision = decide(*_case(requester, doc, items, state))
        code = decision.refusal.code if decision.refusal else ""
        if code in ("block_adversary", "block_protected"):
            assert decision.refusal is not None
            assert "支援" not in decision.refusal.tell_applicant
            assert "措置" not in decision.refusal.tell_applicant


def test_mutation_without_the_block_check_the_block_rows_turn_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Switch the 支援措置 check off: the table must notice, and only in block rows."""
    monkeypatch.setattr(block_rules, "check_request", lambda request, subjects, ctx: None)
    wrong = mismatches()
    assert wrong, "the table did not notice that the 支援措置 check was gone"
    block_states = ("person block", "household block", "the 相手方 asks")
    assert all(any(s in line.split(": got")[0] for s in block_states) for line in wrong)
    assert any("the 相手方 asks" in line for line in wrong)


def test_mutation_without_the_freshness_gate_the_stale_rows_turn_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(block_rules, "check_freshness", lambda request, ctx: None)
    wrong = mismatches()
    assert wrong
    assert all("block data past the limit" in line.split(": got")[0] for line in wrong)
