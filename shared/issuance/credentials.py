"""The applicant's papers: 本人確認 and what each 請求者区分 must show.

Why apart from the decision: these checks are the same for every document kind, and
the clerk fixes them at the counter (one more document, a corrected 委任状) before the
rules about the document itself matter.

本人確認: one photo ID, or two documents of different kinds; by post, a copy enclosed;
口頭質問 and 職員面識 only while the representative's disaster mode is on (the decision
is then flagged, and so is its register entry).
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.model import Resident
from shared.textnorm import name_key

from .context import IssuanceContext
from .items import RESTRICTED_ITEMS
from .refusals import Refusal, refusal
from .requests import (
    DISASTER_ONLY_METHODS,
    Channel,
    IdentityMethod,
    Request,
    RequesterKind,
)


def check_identity(request: Request, ctx: IssuanceContext) -> Refusal | None:
    method = request.identity.method
    documents = request.identity.documents
    if method in DISASTER_ONLY_METHODS and not ctx.disaster_mode:
        return refusal("identity_disaster_only")
    by_post = request.channel is Channel.POST
    if by_post != (method is IdentityMethod.ENCLOSED_COPY):
        return refusal("identity_channel")
    if by_post and not documents:
        return refusal("identity_channel")
    if method is IdentityMethod.PHOTO_ID and not any(d.has_photo for d in documents):
        return refusal("identity_photo_missing")
    if method is IdentityMethod.TWO_DOCUMENTS and len(set(documents)) < 2:
        return refusal("identity_two_documents")
    return None


def identity_flagged(request: Request) -> bool:
    """口頭質問 / 職員面識: allowed only in a disaster, and always flagged."""
    return request.identity.method in DISASTER_ONLY_METHODS


def _filled(*values: str) -> bool:
    return all(v.strip() for v in values)


def check_requester(
    request: Request, subjects: Sequence[Resident], ctx: IssuanceContext
) -> Refusal | None:
    if request.copies < 1:
        return refusal("copies_invalid")
    kind = request.requester
    applicant_id = request.applicant.resident_id
    if kind is RequesterKind.SELF:
        if applicant_id not in {s.id for s in subjects}:
            return refusal("self_not_subject")
        return None
    if kind is RequesterKind.HOUSEHOLD:
        applicant = ctx.data.residents.get(applicant_id)
        if applicant is None or any(s.household_id != applicant.household_id for s in subjects):
            return refusal("household_not_member")
        return None
    if kind is RequesterKind.LEGAL_REPRESENTATIVE:
        legal = request.legal_representation
        in_household = applicant_id in ctx.data.residents and all(
            ctx.data.residents[applicant_id].household_id == s.household_id for s in subjects
        )
        if legal is None or not (legal.proof.strip() or in_household):
            return refusal("legal_missing")
        return None
    if kind is RequesterKind.PROXY:
        return _check_power_of_attorney(request, ctx)
    if kind is RequesterKind.THIRD_PARTY:
        third = request.third_party
        if third is None or not _filled(third.purpose):
            return refusal("third_party_purpose")
        return None
    if kind is RequesterKind.PROFESSIONAL:
        pro = request.professional
        if pro is None or not _filled(
            pro.registration, pro.form_serial, pro.purpose, pro.submitted_to
        ):
            return refusal("professional_details")
        return None
    official = request.official
    if official is None or not _filled(
        official.agency, official.officer, official.legal_basis, official.purpose
    ):
        return refusal("official_details")
    return None


def _check_power_of_attorney(request: Request, ctx: IssuanceContext) -> Refusal | None:
    poa = request.power_of_attorney
    if poa is None:
        return refusal("poa_missing")
    if not poa.signed_by_person:
        return refusal("poa_unsigned")
    if poa.dated is None or poa.dated > ctx.today:
        return refusal("poa_undated")
    max_days = ctx.policy.power_of_attorney_max_age_days
    if (ctx.today - poa.dated).days > max_days:
        return refusal("poa_expired", days=max_days)
    if name_key(poa.agent_name) != name_key(request.applicant.name):
        return refusal("poa_agent_mismatch", named=poa.agent_name)
    if request.document not in poa.scope:
        return refusal("poa_scope", document=request.document.label)
    undelegated = (request.items & RESTRICTED_ITEMS) - poa.items
    if undelegated:
        return refusal("poa_items", items="・".join(sorted(undelegated)))
    return None
