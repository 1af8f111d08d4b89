"""Errors of the printing package. Clerks see `message` (Japanese, says what to do next);
logs keep the English `str()` detail.

    PrintingError
     ├── MissingGlyph      a character no registered font can draw exactly: an alert for
     │                     the clerk, and nothing is printed (never a silent substitute)
     ├── FontUnavailable   a configured font file is missing or is not a usable font
     ├── DocumentRefused   the data contradicts the document (e.g. an unpaid vehicle tax on
     │                     a 継続検査用 certificate); the issuance rules should have refused
     ├── PayloadError      a QR payload that is malformed or fails verification
     └── PrintJobError     CUPS or the IPP printer refused or lost a job (after retries)
"""

from __future__ import annotations

from dataclasses import dataclass


class PrintingError(Exception):
    """Base class; `message` is the Japanese text shown to the clerk."""

    message: str = "印刷できませんでした。"

    def __init__(self, detail: str, message: str | None = None) -> None:
        super().__init__(detail)
        if message is not None:
            self.message = message


@dataclass(frozen=True, slots=True)
class GlyphAlert:
    """What the clerk's alert list shows for a character without a glyph."""

    town_code: str
    sequence: str  # the character, with its variation selector if any
    context: str  # the text it appeared in (a name, an address)
    message: str

    @property
    def codepoints(self) -> str:
        return " ".join(f"U+{ord(c):04X}" for c in self.sequence)


class MissingGlyph(PrintingError):
    def __init__(self, town_code: str, sequence: str, context: str) -> None:
        self.alert = GlyphAlert(
            town_code,
            sequence,
            context,
            f"「{context}」の文字 {' '.join(f'U+{ord(c):04X}' for c in sequence)} を"
            "印字できるフォントがありません。外字フォントを登録するか、情報担当に連絡して"
            "ください。この書類は印刷していません。",
        )
        super().__init__(
            f"no glyph for {self.alert.codepoints} in {context!r} (town {town_code})",
            self.alert.message,
        )
        self.town_code = town_code
        self.sequence = sequence
        self.context = context


class FontUnavailable(PrintingError):
    message = "フォントファイルを読み込めません。情報担当に連絡してください。"


class DocumentRefused(PrintingError):
    message = "この内容では証明書を発行できません。"


class PayloadError(PrintingError):
    message = "二次元コードの内容を確認できません。改ざんまたは読取り誤りの可能性があります。"


class PrintJobError(PrintingError):
    message = (
        "プリンタに送信できませんでした。PDFをダウンロードして別のプリンタで印刷してください。"
    )
