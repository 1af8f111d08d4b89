"""Issuance rules: who may receive what, how, and what the town's books record.

A certificate is only as good as the decision to hand it over. This package is the
counter's law as code — pure decisions plus registers that persist through the storage
seam — used alike by the own box, a partner's box and a drill (BRIEF §4;
docs/issuance-rules.md is the same rules as a table for supervisors).

    requests     Request: 請求者区分, 本人確認 (kinds of document, never numbers), papers
    context      IssuanceContext: TownData, time, block/registry freshness, modes, intake
    data         TownData: one town's records, indexed for the counter
    decisions    decide(request, context) -> Decision (outcome, items, handover, fee …)
      blocks       支援措置 and the freshness gate
      credentials  本人確認 and each requester kind's papers
      items        default omissions, restricted items, statutory order, sheets
      tax_rules    fiscal year from June, 1 January town, non-filers, 納税, 継続検査
      fees         手数料 with 減免
      refusals     every refusal: reason for the clerk, what to tell the applicant
    office       IssuanceOffice: 発行番号 per copy, register entries, spoil and reprint
    numbering    発行番号 unique across boxes, never reused; voided numbers
    registers    交付 register, 用紙受払簿, cash counts, 日計表
    lists        全住民一覧 / 要支援者名簿 copies, masking, the mayor's signed decision
    drill        見本 marks and the separate number series
    reconcile    the report after recovery
      basis        salted per-field digests of what each copy printed
    intake       the intake seam (pending change and death reports)
    codec        register records as JSON through the storage seam

Errors (errors.py): IssuanceError ├─ RequestError ├─ NumberingError ├─ RegisterError
└─ ReleaseRefused. A refusal is not an error: it is a Decision.
"""

from .context import JST, CopayExemption, IssuanceContext, Policy
from .data import TownData
from .decisions import Decision, Handover, Outcome, decide
from .errors import IssuanceError, NumberingError, RegisterError, ReleaseRefused, RequestError
from .intake import Intake, MemoryIntake, PendingReport, ReportKind
from .office import Desk, IssuanceOffice, Operator
from .refusals import Refusal
from .requests import (
    Applicant,
    Channel,
    DocumentKind,
    IdDocumentKind,
    Identity,
    IdentityMethod,
    Item,
    Request,
    RequesterKind,
)

__all__ = [
    "JST",
    "Applicant",
    "Channel",
    "CopayExemption",
    "Decision",
    "Desk",
    "DocumentKind",
    "Handover",
    "IdDocumentKind",
    "Identity",
    "IdentityMethod",
    "Intake",
    "IssuanceContext",
    "IssuanceError",
    "IssuanceOffice",
    "Item",
    "MemoryIntake",
    "NumberingError",
    "Operator",
    "Outcome",
    "PendingReport",
    "Policy",
    "Refusal",
    "RegisterError",
    "ReleaseRefused",
    "ReportKind",
    "Request",
    "RequestError",
    "RequesterKind",
    "TownData",
    "decide",
]
