"""国民健康保険: 資格確認書 (card size) and the disaster-time 一部負担金免除証明書.

資格確認書 items (BRIEF §4): 氏名, 性別, 生年月日, 被保険者等記号・番号・枝番, 保険者番号
and name, 交付年月日, validity (有効期限), 負担割合 and 発効期日 for people aged 70 or
more, 限度区分 only on request. Front: the items; back: notes, 発行番号 and the signed
QR (a card is too small for both on one side). People with a マイナ保険証 get the A4
資格情報のお知らせ instead (`render_eligibility_notice`): the same items, for the
holder's information, with the notice that it alone does not serve at a clinic.
"""

from __future__ import annotations

from datetime import date

from printing.canvas import A4, A5, CARD, Canvas
from printing.errors import DocumentRefused
from printing.fonts import FontRegistry, FontRole
from printing.layout import (
    Column,
    Issue,
    PrintedDocument,
    Signer,
    draw_certification,
    draw_table,
    draw_title,
    finish,
    wareki,
)
from printing.qr import DocumentKind
from shared.model import NhiMember, Resident


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def insurer_name(issue: Issue) -> str:
    return f"{issue.town.name}国民健康保険"


def member_number(member: NhiMember) -> str:
    return f"記号 {member.symbol}　番号 {member.number}（枝番 {member.branch}）"


def render_eligibility_card(
    issue: Issue,
    member: NhiMember,
    resident: Resident,
    signer: Signer,
    *,
    with_limit_category: bool = False,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """国民健康保険資格確認書, card size, front and back."""
    if member.has_my_number_insurance:
        raise DocumentRefused(
            f"{member.resident_id} uses a マイナ保険証",
            "マイナ保険証をお持ちの方には資格情報のお知らせを交付します。",
        )
    if member.lost is not None and member.lost <= issue.day:
        raise DocumentRefused(f"{member.resident_id} lost coverage", "資格を喪失しています。")
    canvas = Canvas(issue.town.code, size=CARD, registry=registry)
    front = canvas.add_page()
    front.rect(1.5, 1.5, CARD[0] - 3, CARD[1] - 3, width=0.3)
    front.text(CARD[0] / 2, 8, "国民健康保険資格確認書", size=10, role=FontRole.GOTHIC, align="C")
    front.text(CARD[0] - 4, 12.5, f"有効期限 {wareki(member.valid_until)}", size=5.5, align="R")
    rows: list[list[tuple[str, str, FontRole]]] = [
        [("被保険者等記号・番号", member_number(member), FontRole.BODY)],
        [("氏名", resident.name, FontRole.NAME)],
        [
            ("生年月日", wareki(resident.birth_date), FontRole.BODY),
            ("性別", str(resident.sex), FontRole.BODY),
        ],
        [("交付年月日", wareki(issue.day), FontRole.BODY)],
    ]
    if _age(resident.birth_date, member.valid_from) >= 70:
        rows.append(
            [
                ("一部負担金の割合", f"{member.copay_percent // 10}割", FontRole.BODY),
                ("発効期日", wareki(member.copay_effective), FontRole.BODY),
            ]
        )
    if with_limit_category and member.limit_category:
        rows[3].append(("限度区分", member.limit_category, FontRole.BODY))
    rows.append(
        [
            ("保険者番号", issue.town.nhi_insurer_number, FontRole.BODY),
            ("保険者名称", insurer_name(issue), FontRole.BODY),
        ]
    )
    y = 17.0
    for row in rows:
        x = 4.0
        for label, value, role in row:
            width = front.text(x, y, label, size=4.6, gray=70)
            value_x = max(x + width + 1.5, 24.0 if x == 4.0 else x + width + 1.5)
            size = 7.5 if label == "氏名" else 5.8
            drawn = front.text(value_x, y, value, size=size, role=role, width=CARD[0] - 5 - value_x)
            x = value_x + drawn + 3
        y += 4.4 if row[0][0] == "氏名" else 3.7
    back = canvas.add_page()
    back.text(3, 6, "注意事項", size=6, role=FontRole.GOTHIC)
    notes = (
        "1 医療機関等で診療を受けるときは、必ずこの確認書を窓口に提出してください。",
        "2 有効期限を過ぎた確認書は使用できません。町村に返してください。",
        "3 右の二次元コードで発行の真正性を確認できます。",
    )
    y = 10.5
    for note in notes:
        back.text(3, y, note, size=4.3, width=CARD[0] - 38)
        y += 3.2
    return finish(canvas, issue, DocumentKind.SHIKAKU, resident.name, signer, qr_pages={1})


def render_copay_exemption(
    issue: Issue,
    member: NhiMember,
    resident: Resident,
    address: str,
    signer: Signer,
    *,
    disaster: str,
    valid_from: date,
    valid_until: date,
    reason: str = "住家の全半壊等",
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """国民健康保険一部負担金免除証明書 (A5) for a declared disaster."""
    if valid_until < valid_from:
        raise DocumentRefused("exemption ends before it starts", "免除期間が正しくありません。")
    canvas = Canvas(issue.town.code, size=A5, registry=registry)
    page = canvas.add_page()
    draw_title(page, "国民健康保険一部負担金免除証明書", y=18, size=13)
    rows = [
        ["保険者番号", issue.town.nhi_insurer_number],
        ["保険者名称", insurer_name(issue)],
        ["被保険者等記号・番号", member_number(member)],
        ["氏名", resident.name],
        ["生年月日", wareki(resident.birth_date)],
        ["性別", str(resident.sex)],
        ["住所", address],
        ["免除の期間", f"{wareki(valid_from)}から{wareki(valid_until)}まで"],
        ["免除の理由", f"{disaster}による{reason}"],
    ]
    y = draw_table(
        page, 10, 26, [Column("項目", 36), Column("内容", 92)], rows, row_height=7.0, size=8.5
    )
    page.text(10, y + 7, "医療機関等の窓口で、被保険者証等とともに提示してください。", size=8)
    draw_certification(
        page,
        issue,
        "上記の者は、国民健康保険法第44条第1項の規定により一部負担金の支払を免除されることを証明します。",
        y + 16,
    )
    return finish(canvas, issue, DocumentKind.MENJO, resident.name, signer)


def render_eligibility_notice(
    issue: Issue,
    member: NhiMember,
    resident: Resident,
    address: str,
    signer: Signer,
    *,
    registry: FontRegistry | None = None,
) -> PrintedDocument:
    """資格情報のお知らせ (A4) for a member who uses a マイナ保険証: their eligibility
    items, so they know them; not a document to show at a clinic by itself."""
    if not member.has_my_number_insurance:
        raise DocumentRefused(
            f"{member.resident_id} has no マイナ保険証",
            "マイナ保険証の登録がない方には資格確認書を交付します。",
        )
    if member.lost is not None and member.lost <= issue.day:
        raise DocumentRefused(f"{member.resident_id} lost coverage", "資格を喪失しています。")
    canvas = Canvas(issue.town.code, size=A4, registry=registry)
    page = canvas.add_page()
    draw_title(page, "資格情報のお知らせ", y=24, size=17)
    page.text(105, 32, "（国民健康保険）", size=10, align="C")
    rows = [
        ["住所", address],
        ["氏名", resident.name],
        ["生年月日", wareki(resident.birth_date)],
        ["性別", str(resident.sex)],
        ["被保険者等記号・番号", member_number(member)],
        ["資格取得年月日", wareki(member.acquired)],
        ["一部負担金の割合", f"{member.copay_percent // 10}割"],
        ["保険者番号", issue.town.nhi_insurer_number],
        ["保険者名称", insurer_name(issue)],
        ["交付年月日", wareki(issue.day)],
    ]
    if _age(resident.birth_date, issue.day) >= 70 and member.copay_effective:
        rows.insert(7, ["発効期日", wareki(member.copay_effective)])
    y = draw_table(
        page, 20, 42, [Column("項目", 50), Column("内容", 120)], rows, row_height=8.0, size=10
    )
    notes = (
        "・あなたはマイナ保険証（健康保険証の利用登録をしたマイナンバーカード）をお持ちです。",
        "　医療機関等ではマイナ保険証を提示してください。",
        "・このお知らせだけでは受診できません。マイナ保険証で受診できないときは、",
        "　マイナポータルの資格情報画面とこのお知らせをあわせて提示してください。",
        "・記載の内容に変更があったときは、14日以内に届け出てください。",
    )
    y += 8
    for note in notes:
        page.text(20, y, note, size=9.5, width=170)
        y += 6
    draw_certification(page, issue, "上記のとおり資格情報をお知らせします。", y + 8)
    return finish(canvas, issue, DocumentKind.OSHIRASE, resident.name, signer)
