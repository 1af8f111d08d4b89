"""`town.json`: the town itself, the export time and the CSV files' encoding.

JSON (RFC 8259, so always UTF-8), English keys named after the model's fields, dates as
ISO strings or null, booleans as true/false. Unknown keys are refused so a typo such as
"encodng" cannot silently fall back to a default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shared.model import Official, SealRules, Town

from .codec import ENCODINGS, KANA, decode, forbidden_char
from .errors import ExportFormatError
from .gaiji import is_legacy_gaiji

NAME = "town.json"
LAYOUT = "renkei-core-export"
VERSION = 1
_ENCODING_ALIASES = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "cp932": "cp932",
    "windows-31j": "cp932",
    "ms932": "cp932",
}


@dataclass(frozen=True, slots=True)
class Manifest:
    """The contents of town.json."""

    town: Town
    exported_at: str  # ISO 8601 with UTC offset, kept as written
    encoding: str = "utf-8"  # of the CSV files: "utf-8" or "cp932"


def dump(manifest: Manifest) -> bytes:
    document = {
        "layout": LAYOUT,
        "version": VERSION,
        "encoding": manifest.encoding,
        "exported_at": manifest.exported_at,
        "town": _town_object(manifest.town),
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def dump_town(town: Town) -> str:
    """The town's settings alone as JSON (what a box keeps in its sealed directory)."""
    return json.dumps(_town_object(town), ensure_ascii=False, sort_keys=True)


def parse_town(text: str) -> Town:
    """Read what `dump_town` wrote (validated like town.json's "town" object)."""
    return _town(Path(NAME), json.loads(text))


def _town_object(town: Town) -> dict[str, object]:
    return {
        "code": town.code,
        "name": town.name,
        "kana": town.kana,
        "prefecture": town.prefecture,
        "county": town.county,
        "nhi_insurer_number": town.nhi_insurer_number,
        "office_address": town.office_address,
        "office_phone": town.office_phone,
        "officials": [
            {
                "name": o.name,
                "title": o.title,
                "start": o.start.isoformat(),
                "end": None if o.end is None else o.end.isoformat(),
                "acting_for_mayor": o.acting_for_mayor,
            }
            for o in town.officials
        ],
        "seal": {
            "seal_size_mm": town.seal.seal_size_mm,
            "colour_notice": town.seal.colour_notice,
            "seal_text": town.seal.seal_text,
        },
        "fees": [{"kind": kind, "yen": yen} for kind, yen in town.fees],
    }


class _Reader:
    """Typed access to a JSON object with `town.officials[0].start`-style error paths."""

    def __init__(self, path: Path, obj: object, where: str, keys: set[str]) -> None:
        self.path = path
        self.where = where
        if not isinstance(obj, dict):
            raise self.error("", "オブジェクト（{...}）で書いてください", "a JSON object")
        self.obj: dict[str, Any] = obj
        for key in obj:
            if key not in keys:
                raise self.error(key, f"定義にないキー「{key}」があります", f"only {sorted(keys)}")
        for key in keys:
            if key not in obj:
                raise self.error(key, f"キー「{key}」がありません", f"key {key!r}")

    def error(self, key: str, message_ja: str, expected: str) -> ExportFormatError:
        column = f"{self.where}.{key}" if self.where and key else (self.where or key)
        return ExportFormatError(self.path, message_ja, expected, column=column)

    def text(
        self,
        key: str,
        *,
        required: bool = True,
        check: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str:
        value = self.obj[key]
        if not isinstance(value, str):
            raise self.error(key, "文字列で書いてください", "a string")
        if required and not value:
            raise self.error(key, "必須の項目が空です", "a non-empty string")
        bad = forbidden_char(value)
        if bad is not None:
            raise self.error(
                key, f"改行・制御文字 U+{ord(bad):04X} は書けません", "no control characters"
            )
        if value and check is not None and not check.fullmatch(value):
            raise self.error(key, hint, f"a value matching {check.pattern}")
        return value

    def day(self, key: str, *, required: bool = True) -> date | None:
        value = self.obj[key]
        if value is None and not required:
            return None
        if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(
            key,
            '日付は実在する日を "YYYY-MM-DD" で書いてください',
            "an existing date as YYYY-MM-DD" + ("" if required else " or null"),
        )

    def boolean(self, key: str) -> bool:
        value = self.obj[key]
        if not isinstance(value, bool):
            raise self.error(key, "true か false で書いてください", "true or false")
        return value

    def integer(self, key: str) -> int:
        value = self.obj[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, "0 以上の整数で書いてください", "a non-negative integer")
        return value

    def number(self, key: str) -> float:
        value = self.obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error(key, "正の数で書いてください", "a positive number")
        return float(value)

    def items(self, key: str) -> list[object]:
        value = self.obj[key]
        if not isinstance(value, list):
            raise self.error(key, "配列（[...]）で書いてください", "a JSON array")
        return value


def load(folder: Path) -> Manifest:
    """Read and validate `folder/town.json`."""
    path = folder / NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportFormatError(path, "town.json がありません", "a town.json file") from None
    return parse(path, data)


def parse(path: Path, data: bytes) -> Manifest:
    """Validate a town.json held in memory (`path` only names it in error messages):
    a box reads the town's settings from its sealed replica, never from a file."""
    text = decode(path, data, "utf-8", declarable=False)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportFormatError(
            path,
            f"JSON として読めません（{exc.msg}）",
            "valid JSON",
            line=exc.lineno,
            column_index=exc.colno,
        ) from exc
    top = _Reader(path, document, "", {"layout", "version", "encoding", "exported_at", "town"})
    if top.obj["layout"] != LAYOUT:
        raise top.error("layout", f'書式名は "{LAYOUT}" です', f"layout {LAYOUT!r}")
    if top.obj["version"] != VERSION:
        raise top.error("version", f"この書式は版 {VERSION} のみ読めます", f"version {VERSION}")
    encoding = _ENCODING_ALIASES.get(str(top.obj["encoding"]).lower())
    if encoding not in ENCODINGS:
        raise top.error(
            "encoding", '文字コードは "utf-8" か "cp932" を書いてください', '"utf-8" or "cp932"'
        )
    exported_at = top.text("exported_at")
    try:
        moment = datetime.fromisoformat(exported_at)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise top.error(
            "exported_at",
            "出力日時は時差付きの ISO 8601（例 2026-04-01T02:00:00+09:00）で書きます",
            "an ISO 8601 date-time with a UTC offset",
        )
    return Manifest(town=_town(path, top.obj["town"]), exported_at=exported_at, encoding=encoding)


def _town(path: Path, obj: object) -> Town:
    r = _Reader(
        path,
        obj,
        "town",
        {
            "code",
            "name",
            "kana",
            "prefecture",
            "county",
            "nhi_insurer_number",
            "office_address",
            "office_phone",
            "officials",
            "seal",
            "fees",
        },
    )
    officials: list[Official] = []
    for n, item in enumerate(r.items("officials")):
        o = _Reader(
            path,
            item,
            f"town.officials[{n}]",
            {"name", "title", "start", "end", "acting_for_mayor"},
        )
        start = o.day("start")
        end = o.day("end", required=False)
        assert start is not None
        if end is not None and end < start:
            raise o.error("end", "任期の終わりが始まりより前です", "end on or after start")
        officials.append(
            Official(
                name=o.text("name"),
                title=o.text("title"),
                start=start,
                end=end,
                acting_for_mayor=o.boolean("acting_for_mayor"),
            )
        )
    s = _Reader(path, r.obj["seal"], "town.seal", {"seal_size_mm", "colour_notice", "seal_text"})
    seal = SealRules(
        seal_size_mm=s.number("seal_size_mm"),
        colour_notice=s.text("colour_notice", required=False),
        seal_text=s.text("seal_text", required=False),
    )
    fees: list[tuple[str, int]] = []
    for n, item in enumerate(r.items("fees")):
        f = _Reader(path, item, f"town.fees[{n}]", {"kind", "yen"})
        kind = f.text("kind")
        if kind in dict(fees):
            raise f.error("kind", f"手数料「{kind}」が重複しています", "distinct fee kinds")
        fees.append((kind, f.integer("yen")))
    return Town(
        code=r.text("code", check=re.compile(r"[0-9]{5}"), hint="団体コードは半角数字5桁です"),
        name=r.text("name"),
        kana=r.text("kana", check=KANA, hint="フリガナは全角カタカナで書いてください"),
        prefecture=r.text("prefecture"),
        county=r.text("county", required=False),
        officials=tuple(officials),
        seal=seal,
        fees=tuple(fees),
        nhi_insurer_number=r.text(
            "nhi_insurer_number", check=re.compile(r"[0-9]{6}"), hint="保険者番号は半角数字6桁です"
        ),
        office_address=r.text("office_address", required=False),
        office_phone=r.text("office_phone", required=False),
    )


def map_gaiji(path: Path, town: Town, mapping: Mapping[str, str]) -> Town:
    """Map legacy 外字 in the town's text (an official's name may hold one)."""

    def fix(where: str, value: str) -> str:
        out: list[str] = []
        for char in value:
            if is_legacy_gaiji(char):
                if char not in mapping:
                    raise ExportFormatError(
                        path,
                        f"外字 U+{ord(char):04X} が外字対応表（gaiji.csv）にありません",
                        f"U+{ord(char):04X} mapped in gaiji.csv",
                        column=where,
                    )
                out.append(mapping[char])
            else:
                out.append(char)
        return "".join(out)

    officials = tuple(
        replace(
            o,
            name=fix(f"town.officials[{n}].name", o.name),
            title=fix(f"town.officials[{n}].title", o.title),
        )
        for n, o in enumerate(town.officials)
    )
    seal = replace(town.seal, seal_text=fix("town.seal.seal_text", town.seal.seal_text))
    return replace(
        town,
        officials=officials,
        seal=seal,
        office_address=fix("town.office_address", town.office_address),
    )
