"""What a document was issued from, as salted digests per printed field.

Why: after recovery the reconciliation must find documents that a later import proved
wrong. Keeping every printed value in the register would copy the registry into it; a
digest per field is enough to tell *that* a field changed and *which* one, and the
current registry says to what. Digests are BLAKE2b keyed with a random salt per register
entry, so equal values in two entries do not look equal, and short numbers (個人番号,
住民票コード) are not looked up from a table of precomputed digests.

A changed field makes the document wrong only if the change took effect on or before the
day of issue. Where the record dates the change (住所を定めた年月日 for the address, the
除票's date, a payment's date) that date decides; where it does not (氏名, 続柄, 本籍, a
tax 更正), the document is reported and the clerk judges.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from shared.model import Resident, TaxKind
from shared.records import to_record

from .data import TownData
from .requests import RESIDENT_DOCUMENTS, DocumentKind, Item, Request


@dataclass(frozen=True, slots=True)
class Scope:
    """Which document about a person (and which year, tax or vehicle) a basis covers."""

    document: DocumentKind
    fiscal_year: int | None = None
    tax_kind: TaxKind | None = None
    vehicle_id: str = ""

    @classmethod
    def of(cls, request: Request) -> Scope:
        return cls(request.document, request.fiscal_year, request.tax_kind, request.vehicle_id)


@dataclass(frozen=True, slots=True)
class FieldDigest:
    name: str
    digest: str


@dataclass(frozen=True, slots=True)
class SubjectBasis:
    resident_id: str
    fields: tuple[FieldDigest, ...]

    def as_dict(self) -> dict[str, str]:
        return {f.name: f.digest for f in self.fields}


def _digest(salt: bytes, name: str, value: object) -> str:
    text = json.dumps([name, value], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), key=salt, digest_size=12).hexdigest()


def _address(person: Resident, data: TownData) -> str:
    household = data.households.get(person.household_id)
    return "" if household is None else f"{household.district}{household.address}"


def printed_values(
    person: Resident, request: Scope, items: Iterable[Item], data: TownData
) -> dict[str, object]:
    """The values a document about `person` prints (by field name), for digesting."""
    removal = None if person.removal is None else to_record(person.removal)
    values: dict[str, object] = {
        "name": person.name,
        "address": _address(person, data),
        "removal": removal,
    }
    doc = request.document
    if doc in RESIDENT_DOCUMENTS:
        values |= {
            "kana": [person.kana, person.kana_certified],
            "birth_date": person.birth_date,
            "sex": person.sex.value,
            "address_set": person.address_set,
            "became_resident": person.became_resident,
            "notified": person.notified,
            "previous_address": person.previous_address,
        }
        chosen = set(items)
        if Item.HEAD_AND_RELATIONSHIP in chosen:
            household = data.households.get(person.household_id)
            head = data.residents.get(household.head_id) if household else None
            values["head_and_relationship"] = [head.name if head else "", person.relationship]
        if Item.HONSEKI in chosen:
            values["honseki"] = [person.honseki, person.hittosha]
        if Item.JUMINHYO_CODE in chosen:
            values["juminhyo_code"] = person.juminhyo_code
        if Item.MY_NUMBER in chosen:
            values["my_number"] = person.my_number
        if person.foreign is not None and chosen & {
            Item.NATIONALITY,
            Item.RESIDENCE_STATUS,
            Item.ALIAS,
        }:
            values["foreign"] = to_record(person.foreign)
    elif doc in (DocumentKind.KAZEI, DocumentKind.HIKAZEI) and request.fiscal_year:
        assessment = data.assessments.get((person.id, request.fiscal_year))
        values["assessment"] = None if assessment is None else to_record(assessment)
    elif doc is DocumentKind.NOZEI:
        for bill in data.installments_of(person.id):
            if bill.tax is request.tax_kind and bill.fiscal_year == request.fiscal_year:
                values[f"installment.{bill.id}"] = [bill.amount, bill.paid]
    elif doc is DocumentKind.KEIJIDOSHA_KEIZOKU:
        for bill in data.vehicle_installments(request.vehicle_id):
            values[f"installment.{bill.id}"] = [bill.amount, bill.paid]
    else:
        member = data.nhi.get(person.id)
        values["nhi"] = None if member is None else to_record(member)
    return values


def subject_basis(
    person: Resident, request: Scope, items: Iterable[Item], data: TownData, salt: bytes
) -> SubjectBasis:
    values = printed_values(person, request, items, data)
    return SubjectBasis(
        person.id,
        tuple(FieldDigest(name, _digest(salt, name, v)) for name, v in sorted(values.items())),
    )


def changed_fields(
    basis: SubjectBasis,
    person: Resident,
    request: Scope,
    items: Iterable[Item],
    data: TownData,
    salt: bytes,
) -> list[str]:
    """Fields whose current value differs from the one the document printed (a field
    that appeared or disappeared counts as changed)."""
    then = basis.as_dict()
    now = subject_basis(person, request, items, data, salt).as_dict()
    return sorted(name for name in then.keys() | now.keys() if then.get(name) != now.get(name))


def effective_date(field: str, person: Resident, data: TownData) -> date | None:
    """When the current value of `field` took effect, where the record says so."""
    if field in ("address", "address_set"):
        return person.address_set
    if field == "removal":
        return None if person.removal is None else person.removal.date
    if field.startswith("installment."):
        bill_id = field.removeprefix("installment.")
        for bill in data.installments.get(person.id, ()):
            if bill.id == bill_id:
                return bill.paid_on
        for bills in data.installments.values():
            for bill in bills:
                if bill.id == bill_id:
                    return bill.paid_on
    return None
