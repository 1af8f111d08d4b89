"""Errors of the core-system export (hierarchy drawn in `shared.export_csv`).

Every error carries a Japanese message for the clerk or hub operator (what is wrong, where,
what to do) and the detail in English attributes for logs and code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ExportError(Exception):
    """Anything wrong with a core-system export, read or written."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The subclasses' constructors take more than the message; rebuild from state so
        # an error survives pickling across processes (workers, executors).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[ExportError], args: tuple[Any, ...], state: dict[str, Any]) -> ExportError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ExportFormatError(ExportError):
    """A file of an export breaks the layout (docs/core-export.md).

    `path` is the file; `line` is 1-based with the header as line 1 (None for a whole-file
    problem); `column` is the header name and `column_index` its 1-based position (None
    when the problem is not in one column); `expected` says in English what the layout
    requires; `value` is the offending text (None when it must not be logged, e.g. a
    個人番号). `also` holds further problems found in the same file, so an operator can fix
    a file in one round.
    """

    def __init__(
        self,
        path: Path,
        message_ja: str,
        expected: str,
        *,
        line: int | None = None,
        column: str | None = None,
        column_index: int | None = None,
        value: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.column_index = column_index
        self.expected = expected
        self.value = value
        self.message_ja = message_ja
        self.also: list[ExportFormatError] = []
        super().__init__(self._render())

    @property
    def location(self) -> str:
        """`<town>/<file>:<line>:<column index>(<header>)`, as far as known."""
        where = (
            f"{self.path.parent.name}/{self.path.name}"
            if self.path.parent.name
            else (self.path.name)
        )
        if self.line is not None:
            where += f":{self.line}"
            if self.column_index is not None:
                where += f":{self.column_index}"
                if self.column:
                    where += f"({self.column})"
        elif self.column:
            where += f":{self.column}"
        return where

    def _render(self) -> str:
        text = f"{self.location}: {self.message_ja}"
        if self.value is not None:
            text += f"（値「{self.value}」）"
        return text

    def with_also(self, others: list[ExportFormatError]) -> ExportFormatError:
        """Attach further problems of the same file; the message counts them."""
        self.also = others
        if others:
            self.args = (f"{self._render()}（ほかに{len(others)}件の誤りがあります）",)
        return self


class ExportEncodingError(ExportFormatError):
    """The bytes of a file are not in its declared encoding; `offset` is the byte offset
    of the first undecodable byte and `looks_like` the encoding it seems to be in
    ("cp932") or ""."""

    def __init__(
        self,
        path: Path,
        message_ja: str,
        expected: str,
        *,
        offset: int,
        looks_like: str = "",
        line: int | None = None,
        column: str | None = None,
        column_index: int | None = None,
    ) -> None:
        self.offset = offset
        self.looks_like = looks_like
        super().__init__(
            path, message_ja, expected, line=line, column=column, column_index=column_index
        )


class ExportReferenceError(ExportFormatError):
    """A row refers to a record another file of the same export does not hold."""


class GaijiError(ExportError):
    """A legacy 外字 (Private Use Area character) has no entry in the town's gaiji.csv."""

    def __init__(self, char: str, index: int) -> None:
        self.char = char
        self.index = index
        self.code_point = f"U+{ord(char):04X}"
        super().__init__(f"外字 {self.code_point} は外字対応表（gaiji.csv）にありません")


class ExportWriteError(ExportError):
    """The model holds a value the layout cannot carry (a line break in a name, a `;` in a
    list item, a character the declared encoding lacks, a record of another town)."""
