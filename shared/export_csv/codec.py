"""Bytes ⇄ text ⇄ rows, and typed, located cell parsing.

Rules (docs/core-export.md §2): UTF-8 without BOM, or CP932 when town.json declares it; a
file that is not valid UTF-8 is never guessed into text — it is decoded as CP932 only when
declared and only when it really looks like CP932, otherwise refused with its byte offset.
Rows are RFC 4180 (the csv module); line breaks and other control characters are not
legal inside a field, so line N of a file is always row N (header = line 1).
"""

from __future__ import annotations

import csv
import enum
import io
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TypeVar

from .errors import ExportEncodingError, ExportFormatError, ExportWriteError
from .gaiji import is_legacy_gaiji

ENCODINGS = ("utf-8", "cp932")
LIST_SEPARATOR = ";"
_BOM = b"\xef\xbb\xbf"
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_UINT = re.compile(r"[0-9]{1,15}")
_INT = re.compile(r"-?[0-9]{1,15}")
# Full-width katakana, the prolonged sound mark, the middle dot and spaces.
KANA = re.compile(r"[\u30a1-\u30fa\u30fb\u30fc\u30fd\u30fe\u3000 ]+")

E = TypeVar("E", bound=enum.Enum)


# The characters of _FORBIDDEN_CATEGORIES as one class: a regex scan is ~20x faster than
# a per-character category lookup, and every cell of every import passes through here.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def forbidden_char(text: str) -> str | None:
    """The first character the layout forbids inside a field (line breaks, controls)."""
    match = _FORBIDDEN.search(text)
    return None if match is None else match.group()


# ---------------------------------------------------------------------------- bytes


def _locate_bytes(data: bytes, offset: int, encoding: str) -> tuple[int, int]:
    """1-based line and column index of the byte at `offset` (fields counted by csv)."""
    start = data.rfind(b"\n", 0, offset) + 1
    prefix = data[start:offset].decode(encoding, errors="replace").rstrip("\r")
    return data.count(b"\n", 0, offset) + 1, _field_index(prefix)


def _field_index(line_prefix: str) -> int:
    fields = next(csv.reader([line_prefix]), [])
    return max(1, len(fields))


def _where(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _column_name(header: Sequence[str], index: int) -> str | None:
    return header[index - 1] if 0 < index <= len(header) else None


def _utf8_votes(data: bytes) -> tuple[int, int]:
    """(well-formed multi-byte UTF-8 characters, malformed sequences)."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for c in text if ord(c) > 0x7F) - bad
    return good, bad


def decode(
    path: Path,
    data: bytes,
    encoding: str,
    header: Sequence[str] = (),
    *,
    declarable: bool = True,
) -> str:
    """Decode a file as the layout allows; never returns mojibake.

    UTF-8 is tried first. Bytes that are not UTF-8 are decoded as CP932 only if the export
    declares "cp932" and the file is mostly not UTF-8 (a UTF-8 file with a few broken bytes
    would decode as CP932 into mojibake, so it is refused as broken UTF-8 instead).
    `declarable=False` is for town.json, which is always UTF-8. Byte offsets in errors
    count from the start of the file.
    """
    skip = len(_BOM) if data.startswith(_BOM) else 0
    data = data[skip:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    good, bad = _utf8_votes(data)
    looks_utf8 = good > bad
    cp932_text: str | None = None
    cp932_error: UnicodeDecodeError | None = None
    if not looks_utf8:
        try:
            cp932_text = data.decode("cp932")
        except UnicodeDecodeError as exc:
            cp932_error = exc
    if encoding == "cp932":
        if cp932_text is not None:
            return cp932_text
        if cp932_error is not None:
            raise _encoding_error(
                path,
                data,
                cp932_error.start,
                "cp932",
                header,
                "CP932（Shift_JIS）として読めないバイトがあります。ファイルが壊れていないか、"
                "基幹系システムの出力を確認してください",
                "bytes valid in the declared encoding cp932",
                skip=skip,
            )
    elif cp932_text is not None and not declarable:
        raise _encoding_error(
            path,
            data,
            utf8_error.start,
            "utf-8",
            header,
            f"UTF-8 ではありません。Shift_JIS（CP932）のようですが、{path.name} は常に UTF-8 で"
            "書きます",
            f"UTF-8 (the file looks like CP932, but {path.name} is always UTF-8)",
            looks_like="cp932",
            skip=skip,
        )
    elif cp932_text is not None:
        raise _encoding_error(
            path,
            data,
            utf8_error.start,
            "utf-8",
            header,
            "UTF-8 ではありません。Shift_JIS（CP932）で書かれているようです。"
            'この文字コードで受け入れるには town.json に "encoding": "cp932" と書いてください',
            'UTF-8 (the file looks like CP932; declare "encoding": "cp932" in town.json)',
            looks_like="cp932",
            skip=skip,
        )
    raise _encoding_error(
        path,
        data,
        utf8_error.start,
        "utf-8",
        header,
        "UTF-8 として読めないバイトがあります。ファイルが壊れていないか確認してください",
        "well-formed UTF-8",
        skip=skip,
    )


def _encoding_error(
    path: Path,
    data: bytes,
    offset: int,
    encoding: str,
    header: Sequence[str],
    message_ja: str,
    expected: str,
    *,
    looks_like: str = "",
    skip: int = 0,
) -> ExportEncodingError:
    """`offset` is into `data`, which lacks the `skip` bytes of a leading BOM."""
    line, index = _locate_bytes(data, offset, encoding)
    offset += skip
    return ExportEncodingError(
        path,
        f"{message_ja}（バイト位置 {offset}）",
        f"{expected}; first bad byte at offset {offset}",
        offset=offset,
        looks_like=looks_like,
        line=line,
        column=_column_name(header, index),
        column_index=index,
    )


def encode(path: Path, text: str, encoding: str, header: Sequence[str] = ()) -> bytes:
    """Encode for writing; a character the encoding cannot carry exactly is refused."""
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise _write_error(path, text, exc.start, header, encoding) from exc
    back = data.decode(encoding)
    if back != text:  # CP932 maps some characters one way only (〜 → ～)
        first = next(i for i, (a, b) in enumerate(zip(text, back, strict=False)) if a != b)
        raise _write_error(path, text, first, header, encoding)
    return data


def _write_error(
    path: Path, text: str, offset: int, header: Sequence[str], encoding: str
) -> ExportWriteError:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    index = _field_index(text[start:offset])
    name = _column_name(header, index) or ""
    char = text[offset]
    return ExportWriteError(
        f"{_where(path)}:{line}:{index}({name}): 文字 U+{ord(char):04X} は {encoding} で"
        "正確に表せません"
    )


# ---------------------------------------------------------------------------- rows


def write_rows(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows to CSV text (LF, minimal RFC 4180 quoting); refuses fields the layout forbids."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for line, row in enumerate(rows, start=2):
        for index, cell in enumerate(row, start=1):
            bad = forbidden_char(cell)
            if bad is not None:
                raise ExportWriteError(
                    f"{_where(path)}:{line}:{index}({header[index - 1]}): 改行・制御文字 "
                    f"U+{ord(bad):04X} は項目に書けません"
                )
        writer.writerow(row)
    return buffer.getvalue()


def check_header(path: Path, header: Sequence[str], found: Sequence[str] | None) -> None:
    """The first line must be exactly the layout's header."""
    if found is None or found == [""] or not found:
        raise ExportFormatError(
            path,
            "見出し行がありません（空のファイルです）",
            f"header line {list(header)}",
            line=1,
        )
    if list(found) == list(header):
        return
    for index, name in enumerate(header, start=1):
        if name not in found:
            raise ExportFormatError(
                path,
                f"列「{name}」がありません（{index}列目にあるはずです）",
                f"column {name!r} at position {index}",
                line=1,
                column=name,
                column_index=index,
            )
    for index, name in enumerate(found, start=1):
        if name not in header:
            raise ExportFormatError(
                path,
                f"定義にない列「{name}」があります",
                f"only the columns {list(header)}",
                line=1,
                column=name,
                column_index=index,
            )
    for index, (want, got) in enumerate(zip(header, found, strict=False), start=1):
        if want != got:
            raise ExportFormatError(
                path,
                f"{index}列目は「{want}」のはずですが「{got}」です（列の順序が違います）",
                f"column {want!r} at position {index}",
                line=1,
                column=want,
                column_index=index,
            )
    raise ExportFormatError(  # only duplicates of known names remain
        path, "見出しに同じ列が重複しています", f"header line {list(header)}", line=1
    )


class Row:
    """One data row with typed accessors that raise located `ExportFormatError`s."""

    def __init__(
        self,
        path: Path,
        line: int,
        header: Sequence[str],
        cells: Sequence[str],
        gaiji: Mapping[str, str] | None,
    ) -> None:
        self.path = path
        self.line = line
        self.header = header
        self.gaiji = gaiji
        self._cells = dict(zip(header, cells, strict=True))
        for index, cell in enumerate(cells, start=1):
            bad = forbidden_char(cell)
            if bad is not None:
                raise self.error(
                    header[index - 1],
                    f"改行・制御文字 U+{ord(bad):04X} は項目に書けません",
                    "no line breaks or control characters inside a field",
                )

    def error(
        self, column: str, message_ja: str, expected: str, *, show: bool = True
    ) -> ExportFormatError:
        value = self._cells.get(column, "")
        return ExportFormatError(
            self.path,
            message_ja,
            expected,
            line=self.line,
            column=column,
            column_index=list(self.header).index(column) + 1,
            value=value if show else None,
        )

    def raw(self, column: str) -> str:
        return self._cells[column]

    def _required(self, column: str, required: bool) -> str:
        value = self._cells[column]
        if required and value == "":
            raise self.error(column, "必須の項目が空です", "a non-empty value", show=False)
        return value

    def text(self, column: str, *, required: bool = False, gaiji: bool = True) -> str:
        """Free text, kept exactly; legacy 外字 are mapped through the town's table."""
        value = self._required(column, required)
        legacy = [c for c in value if is_legacy_gaiji(c)]
        if not legacy:
            return value
        if not gaiji or self.gaiji is None:
            raise self.error(
                column,
                f"外字 U+{ord(legacy[0]):04X}（私用領域の文字）はこの項目に書けません",
                "no Private Use Area characters in this column",
                show=False,
            )
        out: list[str] = []
        for char in value:
            if is_legacy_gaiji(char):
                if char not in self.gaiji:
                    raise self.error(
                        column,
                        f"外字 U+{ord(char):04X} が外字対応表（gaiji.csv）にありません。"
                        "対応を gaiji.csv に追加してください",
                        f"U+{ord(char):04X} mapped in gaiji.csv",
                        show=False,
                    )
                out.append(self.gaiji[char])
            else:
                out.append(char)
        return "".join(out)

    def kana(self, column: str, *, required: bool = False) -> str:
        value = self._required(column, required)
        if value and not KANA.fullmatch(value):
            raise self.error(
                column,
                "フリガナは全角カタカナで書いてください",
                "full-width katakana (U+30A1–U+30FE, spaces)",
            )
        return value

    def ident(self, column: str, *, required: bool = True) -> str:
        value = self._required(column, required)
        if value and not _ID.fullmatch(value):
            raise self.error(
                column,
                "番号は半角英数字と「-」「_」「.」で64文字以内にしてください",
                "an id of 1–64 characters [0-9A-Za-z._-]",
            )
        return value

    def ids(self, column: str) -> tuple[str, ...]:
        value = self._required(column, True)
        items = value.split(LIST_SEPARATOR)
        for item in items:
            if not _ID.fullmatch(item):
                raise self.error(
                    column,
                    f"番号を「{LIST_SEPARATOR}」で区切って並べてください",
                    f"ids [0-9A-Za-z._-] separated by {LIST_SEPARATOR!r}",
                )
        if len(set(items)) != len(items):
            raise self.error(column, "同じ番号が重複しています", "distinct ids")
        return tuple(items)

    def digits(self, column: str, length: int, *, required: bool = True) -> str:
        value = self._required(column, required)
        if value and not (len(value) == length and value.isascii() and value.isdigit()):
            raise self.error(
                column, f"半角数字{length}桁で書いてください", f"{length} ASCII digits"
            )
        return value

    def day(self, column: str) -> date:
        self._required(column, True)
        parsed = self.optional_day(column)
        assert parsed is not None
        return parsed

    def optional_day(self, column: str) -> date | None:
        value = self._cells[column]
        if value == "":
            return None
        match = _DATE.fullmatch(value)
        try:
            if match is None:
                raise ValueError(value)
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            raise self.error(
                column,
                "日付は実在する日を YYYY-MM-DD（西暦・半角）で書いてください",
                "an existing date as YYYY-MM-DD",
            ) from None

    def integer(self, column: str, *, signed: bool = False) -> int:
        value = self._required(column, True)
        if not (_INT if signed else _UINT).fullmatch(value):
            sign = "（負の値は先頭に「-」）" if signed else ""
            raise self.error(
                column,
                f"金額・数値は半角数字のみで書いてください{sign}（桁区切りなし）",
                "an integer in ASCII digits" + (" with optional '-'" if signed else ""),
            )
        return int(value)

    def boolean(self, column: str) -> bool:
        value = self._cells[column]
        if value not in ("0", "1"):
            raise self.error(column, "「1」（はい）か「0」（いいえ）で書いてください", "1 or 0")
        return value == "1"

    def choice(self, column: str, kind: type[E]) -> E:
        value = self._cells[column]
        for member in kind:
            if member.value == value:
                return member
        allowed = "、".join(f"「{m.value}」" for m in kind)
        raise self.error(
            column,
            f"{allowed}のいずれかで書いてください",
            f"one of {[m.value for m in kind]}",
        )


def fmt_date(value: date | None) -> str:
    return "" if value is None else value.isoformat()


def fmt_bool(value: bool) -> str:
    return "1" if value else "0"
