"""`decide(request, context) -> Decision`: may this be handed over, with what, and how.

The checks run in a fixed order, and the first that objects decides (docs/issuance-rules.md
has the same order as a table for supervisors):

     1. mode          drill issues only from synthetic residents, live mode never does
     2. subjects      every 宛名番号 exists; 世帯全員 expands to the household
     3. 支援措置       blocks.check_request — before anything that could help a 相手方
     4. freshness     blocks.check_freshness — stale block data: only the person
     5. 本人確認       credentials.check_identity
     6. 請求者区分     credentials.check_requester (委任状, 世帯, 目的, 士業, 公用)
     7. item options  only resident-record documents offer items
     8. intake only   印鑑登録証明書, 罹災証明書 → INTAKE_ONLY; so is the
                      一部負担金免除証明書 unless a copay exemption is declared
     9. entitlement   which requester kinds a document goes to at all
    10. intake queue  a pending change or death report on a subject holds issuance back
    11. document      除票 or not, 本籍 here, tax rules, insurance membership
    12. 個人番号等     restricted items only to the person's side; via an agent → post
    13. stale data    third-party and 士業 requests are only taken while data is stale
    14. fee           the town's table with 減免

A refusal carries a Japanese reason for the clerk and what to tell the applicant; an
INTAKE_ONLY decision carries the same, explaining why nothing is handed over today.
Decisions are pure: no clock, no I/O beyond the intake seam in the context.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.model import Resident

from . import blocks, credentials, fees, items, tax_rules
from .context import JST, IssuanceContext
from .errors import RequestError
from .refusals import Refusal, refusal
from .requests import (
    INTAKE_ONLY_DOCUMENTS,
    NHI_DOCUMENTS,
    RESIDENT_DOCUMENTS,
    TAX_DOCUMENTS,
    Channel,
    DocumentKind,
    Item,
    Request,
    RequesterKind,
)


class Outcome(enum.StrEnum):
    ISSUE = "交付"
    INTAKE_ONLY = "受付のみ"
    REFUSE = "交付不可"


class Handover(enum.StrEnum):
    COUNTER = "窓口交付"
    POST_REGISTERED_ADDRESS = "住民登録地へ郵送"
    POST_TO_APPLICANT = "請求者あて郵送"
    NONE = "なし"


PERSON_SIDE = frozenset(
    {
        RequesterKind.SELF,
        RequesterKind.HOUSEHOLD,
        RequesterKind.LEGAL_REPRESENTATIVE,
        RequesterKind.PROXY,
    }
)
_ALL_ISSUABLE = RESIDENT_DOCUMENTS | TAX_DOCUMENTS | NHI_DOCUMENTS | {DocumentKind.MENJO}
ENTITLED: dict[RequesterKind, frozenset[DocumentKind]] = {
    RequesterKind.SELF: _ALL_ISSUABLE,
    RequesterKind.HOUSEHOLD: _ALL_ISSUABLE,
    RequesterKind.LEGAL_REPRESENTATIVE: _ALL_ISSUABLE,
    RequesterKind.PROXY: _ALL_ISSUABLE,
    RequesterKind.THIRD_PARTY: RESIDENT_DOCUMENTS,
    RequesterKind.PROFESSIONAL: RESIDENT_DOCUMENTS,
    RequesterKind.OFFICIAL: RESIDENT_DOCUMENTS
    | {DocumentKind.KAZEI, DocumentKind.HIKAZEI, DocumentKind.NOZEI},
}
# Requests that become intake only while the registry is stale (BRIEF §1, §4).
STALE_INTAKE = frozenset({RequesterKind.THIRD_PARTY, RequesterKind.PROFESSIONAL})
_HOUSEHOLD_COPY = frozenset({DocumentKind.JUMINHYO, DocumentKind.KISAI_JIKO})


@dataclass(frozen=True)
class Decision:
    request: Request
    outcome: Outcome
    refusal: Refusal | None = None
    subject_ids: tuple[str, ...] = ()  # statutory order for a household copy
    items: frozenset[Item] = frozenset()  # optional items to print
    handover: Handover = Handover.NONE
    sheets: int = 0  # sheets of one copy (世帯連記式: four people a sheet)
    fee: fees.Fee | None = None
    tax: tax_rules.TaxFacts | None = None
    identity_flagged: bool = False  # 口頭質問 / 職員面識 in a disaster
    sample: bool = False  # drill: 「見本」 and the drill number series
    blocks_seen: tuple[str, ...] = ()  # every block id this box held (for reconciliation)
    blocks_checked_at: datetime | None = None
    registry_checked_at: datetime | None = None
    stale: bool = False  # printed: 「○年○月○日○時現在の記録による」
    notes: tuple[str, ...] = field(default=())

    @property
    def issued(self) -> bool:
        return self.outcome is Outcome.ISSUE


def _subjects(request: Request, ctx: IssuanceContext) -> list[Resident] | Refusal:
    if request.town_code != ctx.data.town.code:
        raise RequestError(
            f"この請求は町村コード {request.town_code} のものですが、"
            f"開いている記録は {ctx.data.town.name} です。"
        )
    if not request.subject_ids:
        raise RequestError("対象者が指定されていません。")
    if request.document not in RESIDENT_DOCUMENTS and len(request.subject_ids) != 1:
        raise RequestError(f"「{request.document.label}」は1人ずつ請求してください。")
    people: list[Resident] = []
    for resident_id in request.subject_ids:
        person = ctx.data.residents.get(resident_id)
        if person is None or person.town_code != ctx.data.town.code:
            return refusal("subject_unknown", resident_id=resident_id)
        people.append(person)
    first = people[0]
    household = ctx.data.households.get(first.household_id)
    head_id = household.head_id if household else ""
    if request.whole_household and request.document in _HOUSEHOLD_COPY and not first.is_removed:
        return items.statutory_order(ctx.data.members_of(first.household_id), head_id)
    if all(p.household_id == first.household_id for p in people):
        return items.statutory_order(people, head_id)
    return people


def _mode(ctx: IssuanceContext) -> Refusal | None:
    if ctx.drill and not ctx.data.synthetic:
        return refusal("drill_real_data")
    if not ctx.drill and ctx.data.synthetic:
        return refusal("synthetic_in_live")
    return None


def _pending(subjects: Sequence[Resident], ctx: IssuanceContext) -> Refusal | None:
    code = ctx.data.town.code
    kinds = sorted(
        {
            report.kind.value
            for person in subjects
            for report in ctx.intake.pending_for(code, person.id)
            if report.blocks_issuance
        }
    )
    return refusal("intake_pending", kinds="・".join(kinds)) if kinds else None


def _document(
    request: Request, subjects: Sequence[Resident], ctx: IssuanceContext
) -> tuple[Refusal | None, tax_rules.TaxFacts | None]:
    doc = request.document
    if doc in (DocumentKind.JUMINHYO, DocumentKind.KISAI_JIKO):
        removed = next((p for p in subjects if p.removal is not None), None)
        if removed is not None and removed.removal is not None:
            return refusal("juminhyo_for_removed", reason=removed.removal.reason.value), None
    elif doc is DocumentKind.JOHYO:
        if any(p.removal is None for p in subjects):
            return refusal("johyo_for_living"), None
    elif doc is DocumentKind.FUHYO:
        if any(ctx.data.town.name not in p.honseki for p in subjects):
            return refusal("fuhyo_other_honseki"), None
    elif doc in TAX_DOCUMENTS:
        return tax_rules.check(request, subjects[0], ctx)
    elif doc in NHI_DOCUMENTS or doc is DocumentKind.MENJO:
        member = ctx.data.nhi.get(subjects[0].id)
        if member is None or (member.lost is not None and member.lost <= ctx.today):
            return refusal("nhi_not_member"), None
        if doc is DocumentKind.SHIKAKU_OSHIRASE and not member.has_my_number_insurance:
            return refusal("nhi_no_my_number_insurance"), None
        # Decided here, not at printing: the card renderer refuses a マイナ保険証
        # holder, and a refusal that late would void an already drawn number.
        if doc is DocumentKind.SHIKAKU_KAKUNIN and member.has_my_number_insurance:
            return refusal("nhi_has_my_number_insurance"), None
    return None, None


def _handover(request: Request, restricted: bool) -> Handover:
    if request.channel is Channel.POST:
        own_side = request.requester in (RequesterKind.SELF, RequesterKind.HOUSEHOLD)
        if own_side or restricted:
            return Handover.POST_REGISTERED_ADDRESS
        return Handover.POST_TO_APPLICANT
    if restricted and request.requester is RequesterKind.PROXY:
        return Handover.POST_REGISTERED_ADDRESS
    return Handover.COUNTER


def decide(request: Request, ctx: IssuanceContext) -> Decision:
    """Judge one request against the town's rules (see the module docstring)."""
    base = Decision(
        request=request,
        outcome=Outcome.REFUSE,
        identity_flagged=credentials.identity_flagged(request),
        sample=ctx.drill,
        blocks_seen=tuple(sorted(b.id for b in ctx.data.blocks)),
        blocks_checked_at=ctx.blocks_checked_at,
        registry_checked_at=ctx.registry_checked_at,
        stale=ctx.registry_stale,
    )

    def refuse(why: Refusal, outcome: Outcome = Outcome.REFUSE) -> Decision:
        return replace(base, outcome=outcome, refusal=why)

    found = _mode(ctx)
    if found:
        return refuse(found)
    subjects = _subjects(request, ctx)
    if isinstance(subjects, Refusal):
        return refuse(subjects)
    base = replace(base, subject_ids=tuple(p.id for p in subjects))
    checks: tuple[Callable[[], Refusal | None], ...] = (
        lambda: blocks.check_request(request, subjects, ctx),
        lambda: blocks.check_freshness(request, ctx),
        lambda: credentials.check_identity(request, ctx),
        lambda: credentials.check_requester(request, subjects, ctx),
    )
    for check in checks:
        found = check()
        if found:
            return refuse(found)
    offered = items.options_for(request.document)
    if not request.items <= offered:
        extra = "・".join(sorted(request.items - offered))
        return refuse(refusal("items_not_offered", document=request.document.label, items=extra))
    declared = request.document is DocumentKind.MENJO and ctx.copay_exemption is not None
    if request.document in INTAKE_ONLY_DOCUMENTS and not declared:
        why = refusal("intake_only_document", document=request.document.label)
        return refuse(why, Outcome.INTAKE_ONLY)
    if request.document not in ENTITLED[request.requester]:
        return refuse(
            refusal(
                "requester_not_entitled",
                requester=request.requester.value,
                document=request.document.label,
            )
        )
    found = _pending(subjects, ctx)
    if found:
        return refuse(found)
    found, tax = _document(request, subjects, ctx)
    if found:
        return refuse(found)
    chosen = items.applicable_items(request.items, subjects)
    restricted = bool(chosen & items.RESTRICTED_ITEMS)
    if restricted and request.requester not in PERSON_SIDE:
        return refuse(refusal("restricted_items"))
    if ctx.registry_stale and request.requester in STALE_INTAKE:
        as_of = ctx.registry_checked_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
        return refuse(refusal("intake_registry_stale", as_of=as_of), Outcome.INTAKE_ONLY)
    handover = _handover(request, restricted)
    notes: list[str] = []
    if chosen != request.items:
        notes.append("対象者に該当しない項目（本籍、国籍等）は記載しません。")
    if handover is Handover.POST_REGISTERED_ADDRESS and request.channel is Channel.COUNTER:
        notes.append("個人番号・住民票コード入りの写しは代理人に渡さず、住民登録地へ郵送します。")
    if base.identity_flagged:
        notes.append(f"本人確認は{request.identity.method.value}（災害モード）。記録に残ります。")
    sheets = items.sheets(len(subjects)) if request.document in RESIDENT_DOCUMENTS else 1
    fee = fees.assess(
        ctx.data.town,
        request.document,
        request.copies,
        request.requester,
        disaster_exemption=ctx.disaster_fee_exemption,
        drill=ctx.drill,
    )
    return replace(
        base,
        outcome=Outcome.ISSUE,
        items=chosen,
        handover=handover,
        sheets=sheets,
        fee=fee,
        tax=tax,
        notes=tuple(notes),
    )
