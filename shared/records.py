"""Model objects ⇄ flat records: one dict of scalars per object.

A flat record is what the CRDT documents store (one Loro map per record, one key per
field, so two boxes editing different fields of a resident both keep their edit) and what
the importer diffs against the previous import. Scalars only: str, int, bool, None.

- `date` → ISO string; enums → their value; `tuple[str, ...]` and tuples of pairs → a
  JSON string (they change as a whole, so field-level merging buys nothing there);
- a nested dataclass (a resident's foreign-resident items, removal) is flattened with a
  prefix: `foreign.nationality`, `removal.reason`; all-None prefixed fields mean None.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from shared import model

Scalar = str | int | bool | None
Record = dict[str, Scalar]

T = TypeVar("T")

@dataclass(frozen=True, slots=True)
class TownSettings:
    """A town's settings (officials, 公印規程, 手数料) as its town.json text."""

    json: str


# The tables of a town: name → (record type, id field). Person-keyed records use the
# person as id (one row per person, or per person and year for tax).
TABLES: dict[str, type[Any]] = {
    "households": model.Household,
    "residents": model.Resident,
    "support_blocks": model.SupportBlock,
    "tax_assessments": model.TaxAssessment,
    "vehicles": model.Vehicle,
    "installments": model.Installment,
    "nhi_members": model.NhiMember,
    "support_needs": model.SupportNeed,
    "clerks": model.Clerk,
    "gaiji": model.GaijiMapping,
    "town": TownSettings,
}


def record_id(table: str, obj: Any) -> str:
    """The stable id of a record within its table."""
    if table == "tax_assessments":
        return f"{obj.resident_id}/{obj.fiscal_year}"
    if table in ("nhi_members", "support_needs"):
        return str(obj.resident_id)
    if table == "clerks":
        return str(obj.login_id)
    if table == "gaiji":
        return f"U+{ord(obj.legacy):04X}"
    if table == "town":
        return "settings"
    return str(obj.id)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _encode(value: Any) -> Scalar:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[no-any-return]
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str | int):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    raise TypeError(f"cannot encode {type(value).__name__}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


Decoder = Callable[[Scalar], Any]


def _iso_date(value: Any) -> date:
    return date.fromisoformat(value)


def _decoder(tp: Any) -> Decoder:
    """A function turning a stored scalar back into a value of type `tp`, built once per
    field: `from_record` runs for every resident each time a town opens."""
    inner, optional = _unwrap_optional(tp)
    convert: Callable[[Any], Any]
    if inner is date:
        convert = _iso_date
    elif (isinstance(inner, type) and issubclass(inner, enum.Enum)) or inner in (bool, int, str):
        convert = inner
    elif typing.get_origin(inner) is tuple:
        def convert(value: Any) -> Any:
            return _from_json(inner, json.loads(str(value)))
    else:
        raise TypeError(f"cannot decode {tp}")

    def decode(value: Scalar) -> Any:
        if value is None:
            if optional:
                return None
            raise ValueError(f"missing value for {inner}")
        return convert(value)

    return decode


def _from_json(tp: Any, data: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], item) for item in data)
        return tuple(_from_json(a, item) for a, item in zip(args, data, strict=True))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    return data


def _field_plan(cls: type[Any]) -> list[tuple[str, type[Any] | None]]:
    """(field name, nested dataclass or None) per field, computed once per class:
    `to_record` runs for every row of every import, so no type inspection per call."""
    if cls not in _PLANS:
        plan: list[tuple[str, type[Any] | None]] = []
        for f in dataclasses.fields(cls):
            inner, _ = _unwrap_optional(_hints(cls)[f.name])
            nested = inner if dataclasses.is_dataclass(inner) and isinstance(inner, type) else None
            plan.append((f.name, nested))
        _PLANS[cls] = plan
    return _PLANS[cls]


_PLANS: dict[type[Any], list[tuple[str, type[Any] | None]]] = {}


def to_record(obj: Any) -> Record:
    record: Record = {}
    for name, nested in _field_plan(type(obj)):
        value = getattr(obj, name)
        if nested is not None:
            for sub, _ in _field_plan(nested):
                record[f"{name}.{sub}"] = None if value is None else _encode(getattr(value, sub))
        else:
            record[name] = _encode(value)
    return record


_DecodePlan = list[tuple[str, Decoder | None, type[Any] | None, list[str]]]
_DECODE_PLANS: dict[type[Any], _DecodePlan] = {}


def _decode_plan(cls: type[Any]) -> _DecodePlan:
    """(field, decoder, nested dataclass, nested keys) per field, computed once."""
    if cls not in _DECODE_PLANS:
        plan: _DecodePlan = []
        for name, nested in _field_plan(cls):
            if nested is not None:
                keys = [f"{name}.{sub}" for sub, _ in _field_plan(nested)]
                plan.append((name, None, nested, keys))
            else:
                plan.append((name, _decoder(_hints(cls)[name]), None, []))
        _DECODE_PLANS[cls] = plan
    return _DECODE_PLANS[cls]


def from_record(cls: type[T], record: Record) -> T:
    kwargs: dict[str, Any] = {}
    for name, decode, nested, keys in _decode_plan(cls):
        if nested is not None:
            values = [record.get(key) for key in keys]
            if any(v is not None for v in values):
                subs = {key.split(".", 1)[1]: v for key, v in zip(keys, values, strict=True)}
                kwargs[name] = from_record(nested, subs)
            else:
                kwargs[name] = None
        elif decode is not None and name in record:
            kwargs[name] = decode(record[name])
    return cls(**kwargs)


def export_tables(export: model.TownExport) -> dict[str, dict[str, Record]]:
    """Every table of a town's export as {table: {id: record}}."""
    return {
        table: {record_id(table, obj): to_record(obj) for obj in getattr(export, table)}
        for table in TABLES
        if table != "town"  # the town's settings travel as town.json, not as a list
    }
