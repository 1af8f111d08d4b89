"""Parts every document shares: 発行番号 and page n/N on every page, the as-of line, the
partner-box wording, 「公用」 and 「見本」 marks, the 認証者 with the town's seal, and
`finish()`, which signs the QR and renders the PDF.

Wording (BRIEF §4) — printed when a document is issued from a partner's box or from
stale data, in place of a 契印 and of tamper-proof paper:

    令和8年11月26日2時現在の記録による
    この証明書は、出雲崎町役場に設置した聖籠町の臨時窓口で発行しました。
    この証明書は偽造防止用紙ではない普通紙に印刷しています。…二次元コードで…
    発行番号 20261127-15307-B01-T02-P01-000123　1/2

The 認証者 is always the issuing (stricken) town's, with its 公印規程 settings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from printing.canvas import CARD, Align, Canvas, Page
from printing.errors import DocumentRefused
from printing.fonts import FontRole
from printing.qr import DocumentKind, PayloadFields, sign_payload
from shared.crypto import ClerkCertificate, ClerkKeys
from shared.gcpause import gc_paused
from shared.model import Official, Town
from shared.wareki import to_wareki

JST = timezone(timedelta(hours=9), "JST")


@dataclass(frozen=True, slots=True)
class IssueNumber:
    """発行番号: unique per copy across all boxes and never reused (a spoiled sheet voids
    its number). Drill copies (見本) use their own series, prefixed D."""

    day: date
    town_code: str
    box: str  # e.g. B01
    terminal: str  # e.g. T02
    printer: str  # e.g. P01
    serial: int
    drill: bool = False

    _PATTERN = re.compile(
        r"(?P<drill>D?)(?P<day>\d{8})-(?P<town>\d{5})-(?P<box>[A-Z0-9]+)-(?P<terminal>[A-Z0-9]+)"
        r"-(?P<printer>[A-Z0-9]+)-(?P<serial>\d{6,})"
    )

    def __str__(self) -> str:
        return (
            f"{'D' if self.drill else ''}{self.day:%Y%m%d}-{self.town_code}-{self.box}-"
            f"{self.terminal}-{self.printer}-{self.serial:06d}"
        )

    @classmethod
    def parse(cls, text: str) -> IssueNumber:
        m = cls._PATTERN.fullmatch(text.strip())
        if not m:
            raise ValueError(f"not an issue number: {text!r}")
        day = m["day"]
        return cls(
            date(int(day[:4]), int(day[4:6]), int(day[6:])),
            m["town"],
            m["box"],
            m["terminal"],
            m["printer"],
            int(m["serial"]),
            bool(m["drill"]),
        )


@dataclass(frozen=True, slots=True)
class Issue:
    """Who issues, when, from which data, under which circumstances."""

    town: Town  # the issuing town: the stricken town when printed at a partner
    number: IssueNumber
    issued_at: datetime  # aware; from the box's guarded clock
    data_as_of: datetime  # aware; the data's freshness (export time plus box edits)
    host_office: str = ""  # set when printed on a partner town's box, e.g. 出雲崎町役場
    stale: bool = False  # data from the backup replica (case 1 or 3)
    official_use: bool = False  # 「公用」
    plain_paper: bool = False
    copy_number: int = 0  # lists: the numbered, logged copy

    @property
    def emergency(self) -> bool:
        return bool(self.host_office) or self.stale

    @property
    def drill(self) -> bool:
        return self.number.drill

    @property
    def day(self) -> date:
        return self.issued_at.astimezone(JST).date()


@dataclass(frozen=True, slots=True)
class Signer:
    """The issuing clerk's session: keys, town-signed certificate, and what the QR
    anchors (audit-chain head, data version)."""

    clerk_keys: ClerkKeys
    clerk_cert: ClerkCertificate
    audit_head: bytes
    data_version: bytes


@dataclass(frozen=True, slots=True)
class PrintedDocument:
    kind: DocumentKind
    number: IssueNumber
    pdf: bytes  # b"" when finish() was asked not to render (long lists: preview first)
    pages: int
    payload: str  # the QR text
    text: str  # `Canvas.plain_text()`: kept (sealed) for reprint and verification
    content_digest: bytes
    issued_at: datetime
    canvas: Canvas = field(repr=False, compare=False)

    def first_page_pdf(self) -> bytes:
        """Page 1 alone, for a preview while the whole document renders."""
        return self.render(pages=range(1))

    def render(
        self, *, pages: range | None = None, offset_mm: tuple[float, float] = (0.0, 0.0)
    ) -> bytes:
        """The PDF again (same bytes as `pdf` with the defaults), optionally shifted by a
        printer's calibration offset for pre-printed forms."""
        return self.canvas.render(
            qr_payload=self.payload,
            pages=pages,
            offset_mm=offset_mm,
            created=self.issued_at,
            title=self.kind.title,
        )


# ---------------------------------------------------------------------------- dates


def wareki(d: date | None) -> str:
    return to_wareki(d) if d else ""


def seireki(d: date | None) -> str:
    return f"{d.year}年{d.month}月{d.day}日" if d else ""


def as_of_line(moment: datetime) -> str:
    local = moment.astimezone(JST)
    return f"{to_wareki(local.date())}{local.hour}時現在の記録による"


def yen(amount: int) -> str:
    return f"{amount:,}円"


# ---------------------------------------------------------------------------- 認証者


@dataclass(frozen=True, slots=True)
class Certifier:
    title: str  # 新潟県北蒲原郡聖籠町長 / 聖籠町長職務代理者 聖籠町副町長
    name: str
    acting: bool


def _in_office(official: Official, day: date) -> bool:
    return official.start <= day and (official.end is None or day <= official.end)


def certifier_for(town: Town, day: date) -> Certifier:
    """The 認証者 on `day`: the 職務代理者 while one is appointed, else the mayor. The
    title includes prefecture and county for the mayor (BRIEF §4)."""
    acting = [o for o in town.officials if o.acting_for_mayor and _in_office(o, day)]
    if acting:
        o = acting[-1]
        return Certifier(f"{town.name}長職務代理者 {town.name}{o.title}", o.name, True)
    mayors = [o for o in town.officials if not o.acting_for_mayor and _in_office(o, day)]
    if not mayors:
        raise DocumentRefused(
            f"no mayor or acting official of {town.code} on {day}",
            "認証者（町村長または職務代理者）が登録されていません。職務代理者を登録してください。",
        )
    return Certifier(f"{town.certifier_prefix}長", mayors[-1].name, False)


def draw_certification(page: Page, issue: Issue, statement: str, y: float) -> float:
    """認証文, date, 認証者 and the seal, from `y` down; returns the y below it."""
    town = issue.town
    page.text(20, y, statement, size=10.5, width=page_width(page) - 35)
    y += 7
    page.text(20, y, to_wareki(issue.day), size=10.5)
    who = certifier_for(town, issue.day)
    seal = town.seal.seal_size_mm
    right = page_width(page) - 20
    seal_x = right - seal
    name_w = page.text(seal_x - 4, y + 8, who.name, size=12, role=FontRole.NAME, align="R")
    page.text(seal_x - 8 - name_w, y + 8, who.title, size=12, align="R")
    draw_seal(page, seal_x, y - 2, seal, town.seal.seal_text)
    if town.seal.colour_notice:
        page.text(right, y + seal + 1, f"（{town.seal.colour_notice}）", size=7, align="R")
    return y + max(seal, 12) + 4


def draw_seal(page: Page, x: float, y: float, size: float, text: str) -> None:
    """The town's seal as printed on plain paper: a square with its legend read in
    columns from the right."""
    page.rect(x, y, size, size, width=0.8)
    page.rect(x + 1, y + 1, size - 2, size - 2, width=0.3)
    if not text:
        return
    rows = 2 if len(text) <= 6 else 3
    cols = math.ceil(len(text) / rows)
    cell = (size - 3) / max(rows, cols)
    for i, char in enumerate(text):
        col, row = divmod(i, rows)
        cx = x + size - 1.5 - (col + 0.5) * (size - 3) / cols
        cy = y + 1.5 + (row + 0.5) * (size - 3) / rows
        page.text(cx, cy + cell * 0.35, char, size=cell / 0.3528 * 0.9, align="C")


def page_width(page: Page) -> float:
    return page._canvas.size[0]


# ---------------------------------------------------------------------------- page marks


def draw_title(page: Page, title: str, y: float = 20, size: float = 18) -> None:
    page.text(page_width(page) / 2, y, title, size=size, role=FontRole.GOTHIC, align="C")


def draw_marks(page: Page, issue: Issue) -> None:
    """「公用」 box top right; 「見本」 watermark across a drill copy."""
    w, h = page._canvas.size
    small = w < 100
    if issue.official_use:
        box = 8 if small else 16
        page.rect(w - box - (3 if small else 12), 4 if small else 8, box, box * 0.55, width=0.5)
        page.text(
            w - box / 2 - (3 if small else 12),
            (4 if small else 8) + box * 0.42,
            "公用",
            size=6 if small else 12,
            role=FontRole.GOTHIC,
            align="C",
        )
    if issue.drill:
        page.text(
            w * 0.22,
            h * 0.78 if not small else h * 0.8,
            "見本",
            size=40 if small else 150,
            role=FontRole.GOTHIC,
            gray=215,
            angle=35,
        )
        page.text(
            3 if small else 12,
            4 if small else 8,
            "見本（訓練用・効力なし）",
            size=6 if small else 9,
        )


@dataclass(frozen=True, slots=True)
class FooterStyle:
    margin: float = 10.0
    qr_size: float = 26.0
    size: float = 7.5


def footer_style(canvas: Canvas) -> FooterStyle:
    if canvas.size == CARD:
        return FooterStyle(margin=2.5, qr_size=30.0, size=4.5)
    return FooterStyle()


def emergency_lines(issue: Issue) -> list[str]:
    lines = []
    if issue.host_office:
        lines.append(
            f"この証明書は、{issue.host_office}に設置した{issue.town.name}の臨時窓口で"
            "発行しました。"
        )
    if issue.emergency or issue.plain_paper:
        lines.append(
            "この証明書は偽造防止用紙ではない普通紙に印刷しています。"
            "真正性は二次元コードで確認できます（契印に代えて各頁に発行番号を印字）。"
        )
    return lines


def draw_footer(page: Page, issue: Issue, n: int, total: int, *, qr: bool) -> None:
    """Bottom of every page: as-of line, partner-box wording, 発行番号 n/N, the QR."""
    w, h = page._canvas.size
    style = footer_style(page._canvas)
    right = w - style.margin - (style.qr_size + 3 if qr else 0)
    lines = [as_of_line(issue.data_as_of), *emergency_lines(issue)]
    if issue.copy_number:
        lines.append(f"配布番号 第{issue.copy_number}号（回収・廃棄を記録すること）")
    lines.append(f"発行番号 {issue.number}　{n}/{total}")
    step = style.size * 0.3528 * 1.45
    y = h - style.margin - 1
    for line in reversed(lines):
        page.text(style.margin, y, line, size=style.size, width=right - style.margin)
        y -= step
    if qr:
        page.qr(w - style.margin - style.qr_size, h - style.margin - style.qr_size, style.qr_size)


def footer_height(canvas: Canvas, issue: Issue) -> float:
    style = footer_style(canvas)
    lines = 2 + len(emergency_lines(issue)) + (1 if issue.copy_number else 0)
    return style.margin + max(style.qr_size, lines * style.size * 0.3528 * 1.45) + 3


# ---------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    width: float
    align: Align = "L"
    role: FontRole = FontRole.BODY


def draw_table(
    page: Page,
    x: float,
    y: float,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    row_height: float = 6.0,
    size: float = 9.0,
) -> float:
    """A ruled table with a header row; returns the y below it."""
    total = sum(c.width for c in columns)
    page.rect(x, y, total, row_height, fill_gray=235, width=0.3)
    cx = x
    for column in columns:
        page.text(
            cx + column.width / 2,
            y + row_height * 0.7,
            column.header,
            size=size - 1,
            align="C",
            width=column.width - 1,
        )
        cx += column.width
    y += row_height
    for row in rows:
        cx = x
        for column, value in zip(columns, row, strict=True):
            if column.align == "R":
                tx = cx + column.width - 1.5
            elif column.align == "C":
                tx = cx + column.width / 2
            else:
                tx = cx + 1.5
            page.text(
                tx,
                y + row_height * 0.7,
                value,
                size=size,
                role=column.role,
                align=column.align,
                width=column.width - 3,
            )
            cx += column.width
        page.line(x, y + row_height, x + total, y + row_height, width=0.15)
        y += row_height
    page.rect(x, y - row_height * (len(rows) + 1), total, row_height * (len(rows) + 1), width=0.3)
    return y


# ---------------------------------------------------------------------------- finish


def finish(
    canvas: Canvas,
    issue: Issue,
    kind: DocumentKind,
    subject: str,
    signer: Signer,
    *,
    qr_pages: set[int] | None = None,
    render: bool = True,
) -> PrintedDocument:
    """Footer on every page (page n/N), digest of the printed text, signed QR, PDF."""
    with gc_paused():
        return _finish(canvas, issue, kind, subject, signer, qr_pages, render)


def _finish(
    canvas: Canvas,
    issue: Issue,
    kind: DocumentKind,
    subject: str,
    signer: Signer,
    qr_pages: set[int] | None,
    render: bool,
) -> PrintedDocument:
    total = len(canvas.pages)
    for n, page in enumerate(canvas.pages, start=1):
        draw_marks(page, issue)
        draw_footer(page, issue, n, total, qr=qr_pages is None or n - 1 in qr_pages)
    digest = canvas.content_digest()
    payload = sign_payload(
        PayloadFields(
            kind=kind,
            town_code=issue.town.code,
            issue_number=str(issue.number),
            issued_at=issue.issued_at,
            data_as_of=issue.data_as_of,
            data_version=signer.data_version,
            pages=total,
            subject=subject,
            content_digest=digest,
            audit_head=signer.audit_head,
        ),
        signer.clerk_keys,
        signer.clerk_cert,
    )
    pdf = (
        canvas.render(qr_payload=payload, created=issue.issued_at, title=kind.title)
        if render
        else b""
    )
    return PrintedDocument(
        kind,
        issue.number,
        pdf,
        total,
        payload,
        canvas.plain_text(),
        digest,
        issue.issued_at,
        canvas,
    )
