"""Two-phase drawing: lay a document out as pages of simple operations, then render PDF.

Why two phases: the fonts a document embeds are harfbuzz subsets of exactly the
characters it prints, so every character must be known (and checked: `MissingGlyph`
during layout means nothing is rendered) before fpdf2 sees a font. Page totals (n/N) and
the content digest signed into the QR are known before drawing, too, and the first page
of a long list can be rendered alone for preview.

Rendering uses fpdf2's cheapest paths: `FPDF.text()` (no shaping, ≈5 µs) for runs
without a variation selector; `FPDF.cell()` with harfbuzz shaping only for runs that
carry one, which is where `printing.fpdf_fix` matters. Coordinates are millimetres from
the top-left corner; text `y` is the baseline. The QR is drawn as vector rectangles.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import segno
from fpdf import FPDF
from fpdf.fonts import TTFFont

import printing.fpdf_fix  # noqa: F401  (applies the variation-selector fix once)
from printing.fonts import FontRegistry, FontRole, Run, default_registry
from shared.gcpause import gc_paused

PT_TO_MM = 25.4 / 72
A4 = (210.0, 297.0)
A4_LANDSCAPE = (297.0, 210.0)
A5 = (148.0, 210.0)
CARD = (85.6, 54.0)  # ID-1, the 資格確認書's card size

Align = Literal["L", "C", "R"]


@dataclass(frozen=True, slots=True)
class TextOp:
    x: float
    y: float  # baseline
    run: Run
    size: float  # pt
    gray: int = 0
    angle: float = 0.0


@dataclass(frozen=True, slots=True)
class LineOp:
    x1: float
    y1: float
    x2: float
    y2: float
    width: float = 0.2


@dataclass(frozen=True, slots=True)
class RectOp:
    x: float
    y: float
    w: float
    h: float
    width: float = 0.2
    fill_gray: int | None = None
    stroke: bool = True


@dataclass(frozen=True, slots=True)
class QrOp:
    x: float
    y: float
    size: float


Op = TextOp | LineOp | RectOp | QrOp


class Page:
    def __init__(self, canvas: Canvas) -> None:
        self._canvas = canvas
        self.ops: list[Op] = []
        self.texts: list[str] = []  # every string as printed, in drawing order

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 10.0,
        role: FontRole = FontRole.BODY,
        align: Align = "L",
        width: float = 0.0,
        gray: int = 0,
        angle: float = 0.0,
    ) -> float:
        """Draw one line; shrink it to `width` mm if it would not fit. Returns its width."""
        text = " ".join(text.split("\n")).replace("\t", " ")
        if not text:
            return 0.0
        registry, town = self._canvas.registry, self._canvas.town_code
        text = registry.translate(text, town)
        runs = registry.runs(text, role, town)
        total_em = sum(r.width_em for r in runs)
        if width and total_em * size * PT_TO_MM > width:
            size = width / (total_em * PT_TO_MM)
        total = total_em * size * PT_TO_MM
        start = x - total / 2 if align == "C" else x - total if align == "R" else x
        for run in runs:
            self.ops.append(TextOp(start, y, run, size, gray, angle))
            start += run.width_em * size * PT_TO_MM
        self.texts.append(text)
        return total

    def line(self, x1: float, y1: float, x2: float, y2: float, width: float = 0.2) -> None:
        self.ops.append(LineOp(x1, y1, x2, y2, width))

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        *,
        width: float = 0.2,
        fill_gray: int | None = None,
        stroke: bool = True,
    ) -> None:
        self.ops.append(RectOp(x, y, w, h, width, fill_gray, stroke))

    def qr(self, x: float, y: float, size: float) -> None:
        """Reserve the square where the document's signed QR is drawn at render time."""
        self.ops.append(QrOp(x, y, size))


class Canvas:
    """Pages of one document for one town (the town decides which 外字 font applies)."""

    def __init__(
        self,
        town_code: str,
        *,
        size: tuple[float, float] = A4,
        registry: FontRegistry | None = None,
    ) -> None:
        self.town_code = town_code
        self.size = size
        self.registry = registry or default_registry()
        self.pages: list[Page] = []

    def add_page(self) -> Page:
        page = Page(self)
        self.pages.append(page)
        return page

    def width(self, text: str, size: float, role: FontRole = FontRole.BODY) -> float:
        text = self.registry.translate(text, self.town_code)
        runs = self.registry.runs(text, role, self.town_code)
        return sum(r.width_em for r in runs) * size * PT_TO_MM

    def plain_text(self) -> str:
        """The document's text in drawing order, one line per string, pages split by a
        form feed: what the QR's content digest covers and what a reprint must repeat."""
        return "\f".join("\n".join(page.texts) for page in self.pages)

    def content_digest(self) -> bytes:
        return hashlib.blake2b(self.plain_text().encode(), digest_size=32).digest()

    def render(
        self,
        *,
        qr_payload: str | None = None,
        pages: range | None = None,
        offset_mm: tuple[float, float] = (0.0, 0.0),
        created: datetime | None = None,
        title: str = "",
    ) -> bytes:
        """PDF bytes of the chosen pages (all by default), content shifted by
        `offset_mm` (a printer's calibration for pre-printed forms)."""
        with gc_paused():
            return self._render(qr_payload, pages, offset_mm, created, title)

    def _render(
        self,
        qr_payload: str | None,
        pages: range | None,
        offset_mm: tuple[float, float],
        created: datetime | None,
        title: str,
    ) -> bytes:
        chosen = [self.pages[i] for i in (pages if pages is not None else range(len(self.pages)))]
        texts: dict[str, set[str]] = defaultdict(set)
        for page in chosen:
            for op in page.ops:
                if isinstance(op, TextOp):
                    texts[op.run.font_key].add(op.run.text)
        codepoints = {key: {ord(c) for c in "".join(values)} for key, values in texts.items()}
        pdf = FPDF(unit="mm", format=self.size)
        pdf.set_auto_page_break(False)
        pdf.c_margin = 0
        pdf.set_producer("Renkei")
        if title:
            pdf.set_title(title)
        if created is not None:
            pdf.set_creation_date(created)
        qr_path = _qr_path(qr_payload) if qr_payload else None
        with tempfile.TemporaryDirectory(prefix="renkei-fonts-") as tmp:
            for key, cps in sorted(codepoints.items()):
                path = Path(tmp) / f"{key}.ttf"
                path.write_bytes(self.registry.face(key).subset(cps))
                pdf.add_font(key, fname=path)
                # harfbuzz wrote correct bounding boxes: without this, fontTools unpacks
                # and recompiles every glyph when fpdf2 saves its subset (≈0.4 ms each).
                font = pdf.fonts[key]
                if isinstance(font, TTFFont):
                    font.ttfont.recalcBBoxes = False
            for page in chosen:
                _draw_page(pdf, page, qr_path, offset_mm)
            return bytes(pdf.output())


def _draw_page(
    pdf: FPDF,
    page: Page,
    qr_path: tuple[int, list[tuple[int, int, int]]] | None,
    offset_mm: tuple[float, float],
) -> None:
    pdf.add_page()
    k = pdf.k
    shifted = offset_mm != (0.0, 0.0)
    if shifted:
        pdf._out(f"q 1 0 0 1 {offset_mm[0] * k:.2f} {-offset_mm[1] * k:.2f} cm")
    font: tuple[str, float] = ("", 0.0)
    gray = 0
    for op in _drawing_order(page.ops):
        if isinstance(op, TextOp):
            if (op.run.font_key, op.size) != font:
                font = (op.run.font_key, op.size)
                pdf.set_font(op.run.font_key, size=op.size)
            if op.gray != gray:
                gray = op.gray
                pdf.set_text_color(gray)
            if op.angle:
                with pdf.rotation(op.angle, op.x, op.y):
                    pdf.text(op.x, op.y, op.run.text)
            elif op.run.shaped:
                _shaped_text(pdf, op)
            else:
                pdf.text(op.x, op.y, op.run.text)
        elif isinstance(op, LineOp):
            pdf.set_line_width(op.width)
            pdf.line(op.x1, op.y1, op.x2, op.y2)
        elif isinstance(op, RectOp):
            pdf.set_line_width(op.width)
            style = "D"
            if op.fill_gray is not None:
                pdf.set_fill_color(op.fill_gray)
                style = "DF" if op.stroke else "F"
            pdf.rect(op.x, op.y, op.w, op.h, style=style)
        elif isinstance(op, QrOp) and qr_path is not None:
            pdf._out(_qr_operators(qr_path, op, pdf.k, pdf.h))
    if gray:
        pdf.set_text_color(0)
    if shifted:
        pdf._out("Q")


def _drawing_order(ops: list[Op]) -> list[Op]:
    """Rules, boxes and the QR first, then rotated marks (見本), then text grouped by
    font and size so fpdf2 switches fonts rarely. The order of text in the content
    stream does not change what is printed; `Page.texts` keeps the reading order."""
    shapes = [op for op in ops if not isinstance(op, TextOp)]
    marks = [op for op in ops if isinstance(op, TextOp) and op.angle]
    text = [op for op in ops if isinstance(op, TextOp) and not op.angle]
    text.sort(key=lambda op: (op.run.font_key, op.size))
    return [*shapes, *marks, *text]


def _shaped_text(pdf: FPDF, op: TextOp) -> None:
    """A run with a variation selector: shaped by harfbuzz through fpdf2's cell(), which
    puts the baseline at y + 0.5·h + 0.3·font size."""
    size_mm = op.size * PT_TO_MM
    pdf.set_text_shaping(True)
    try:
        pdf.set_xy(op.x, op.y - 0.8 * size_mm)
        pdf.cell(w=None, h=size_mm, text=op.run.text)
    finally:
        pdf.set_text_shaping(False)


def _qr_path(payload: str) -> tuple[int, list[tuple[int, int, int]]]:
    """The QR's modules as horizontal runs (row, first column, length), with its width in
    modules including the quiet zone. Never Micro QR: zbar cannot read it (FACTS)."""
    code = segno.make(payload, micro=False, error="m")
    matrix = code.matrix
    runs: list[tuple[int, int, int]] = []
    for row, cells in enumerate(matrix):
        col = 0
        n = len(cells)
        while col < n:
            if cells[col]:
                start = col
                while col < n and cells[col]:
                    col += 1
                runs.append((row, start, col - start))
            else:
                col += 1
    return len(matrix) + 8, runs


def _qr_operators(
    qr: tuple[int, list[tuple[int, int, int]]], op: QrOp, k: float, page_h: float
) -> str:
    modules, runs = qr
    unit = op.size / modules
    x0 = op.x + 4 * unit
    y0 = op.y + 4 * unit
    parts = [
        f"q 1 g {op.x * k:.3f} {(page_h - op.y - op.size) * k:.3f} "
        f"{op.size * k:.3f} {op.size * k:.3f} re f 0 g"
    ]
    for row, col, length in runs:
        x = (x0 + col * unit) * k
        y = (page_h - (y0 + (row + 1) * unit)) * k
        parts.append(f"{x:.3f} {y:.3f} {length * unit * k:.3f} {unit * k:.3f} re")
    parts.append("f Q")
    return "\n".join(parts)
