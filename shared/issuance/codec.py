"""Register records ⇄ JSON values, driven by the dataclasses' type hints.

Registers persist through the storage seam as bytes; JSON keeps them readable by a
supervisor with `sqlite3` and stable across versions (unknown keys are an error, missing
keys take the field's default). Supported: str, int, bool, None, `date` and aware
`datetime` (ISO 8601), enums (their value), `tuple[X, ...]`, `frozenset[X]` (sorted) and
nested frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import date, datetime
from typing import Any, TypeVar

from .errors import RegisterError

T = TypeVar("T")

_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RegisterError("時刻にタイムゾーンがありません（内部エラー）")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(encode(v) for v in value)
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise RegisterError(f"記録できない値です: {type(value).__name__}")


def decode(cls: type[T], data: Any) -> T:
    result: T = _decode(cls, data)
    return result


def _decode(tp: Any, data: Any) -> Any:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return _decode(args[0], data)
    origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple(_decode(typing.get_args(tp)[0], v) for v in data)
    if origin is frozenset:
        return frozenset(_decode(typing.get_args(tp)[0], v) for v in data)
    if tp is datetime:
        return datetime.fromisoformat(data)
    if tp is date:
        return date.fromisoformat(data)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise RegisterError(f"{tp.__name__} の記録が壊れています")
        hints = _hints(tp)
        unknown = set(data) - set(hints)
        if unknown:
            raise RegisterError(f"{tp.__name__} に不明な項目があります: {sorted(unknown)}")
        kwargs = {name: _decode(hints[name], data[name]) for name in hints if name in data}
        try:
            return tp(**kwargs)
        except TypeError as exc:
            raise RegisterError(f"{tp.__name__} の記録が壊れています: {exc}") from exc
    if tp in (str, int, bool):
        if not isinstance(data, tp):
            raise RegisterError(f"値の型が違います: {data!r}")
        return data
    raise RegisterError(f"読めない型です: {tp}")
