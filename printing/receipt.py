"""申請受付票: the receipt an applicant takes home when the counter could only take their
application (stale data, hub unreachable, or a document the rules take as intake only).

Not a certificate: it carries no 認証文, seal or signed QR — only the 受付番号, what was
asked, and what happens next — so it cannot be mistaken for the document itself. The
town's office address and phone are printed for questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from printing.canvas import A5, Canvas
from printing.fonts import FontRegistry, FontRole
from printing.layout import JST, Column, draw_table, draw_title, wareki
from shared.model import Town


def render_intake_receipt(
    town: Town,
    number: str,
    received_at: datetime,
    rows: Sequence[tuple[str, str]],
    next_steps: str,
    *,
    registry: FontRegistry | None = None,
) -> bytes:
    """A5 receipt: 受付番号, 受付日, the application's rows (label, value), next steps."""
    canvas = Canvas(town.code, size=A5, registry=registry)
    page = canvas.add_page()
    draw_title(page, "申請受付票", y=18, size=15)
    local = received_at.astimezone(JST)
    page.text(138, 28, f"受付番号 {number}", size=9, align="R")
    page.text(138, 33, f"受付日 {wareki(local.date())} {local.hour}時{local.minute:02d}分", size=9,
              align="R")  # fmt: skip
    table = [[label, value] for label, value in rows if value]
    y = draw_table(page, 10, 40, [Column("項目", 34), Column("内容", 94)], table,
                   row_height=7.0, size=8.5)  # fmt: skip
    page.text(10, y + 8, "この受付票は証明書ではありません。", size=9, role=FontRole.GOTHIC)
    line_y = y + 15
    for line in _wrap(next_steps, 36):
        page.text(10, line_y, line, size=8.5)
        line_y += 5
    office = "　".join(p for p in (f"{town.name}役場", town.office_address, town.office_phone) if p)
    page.text(10, 198, f"お問い合わせ：{office}", size=8, width=128)
    return canvas.render(created=received_at, title="申請受付票")


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]
