"""国民健康保険 資格確認書 (card size, all BRIEF §4 items, QR on the back decodes) and the
一部負担金免除証明書."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from pdf_inspect import IssueFactory, pdftotext
from pypdf import PdfReader

from printing.certificates.nhi import (
    render_copay_exemption,
    render_eligibility_card,
    render_eligibility_notice,
)
from printing.errors import DocumentRefused
from printing.fonts import FontRegistry
from printing.layout import Signer
from shared.model import TownExport


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def in_order(text: str, items: list[str]) -> bool:
    """Each item occurs after the previous one."""
    position = 0
    for item in items:
        found = text.find(item, position)
        if found < 0:
            return False
        position = found + len(item)
    return True


def test_card_front_has_every_item_and_the_back_a_readable_qr(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
    tmp_path: Path,
) -> None:
    export = exports["15307"]
    people = {r.id: r for r in export.residents}
    member = next(m for m in export.nhi_members if not m.has_my_number_insurance)
    person = replace(people[member.resident_id], birth_date=date(1950, 4, 1))  # over 70
    member = replace(
        member, copay_percent=20, copay_effective=date(2026, 8, 1), limit_category="区分Ⅱ"
    )
    doc = render_eligibility_card(
        make_issue(), member, person, signers["15307"], with_limit_category=True, registry=registry
    )
    reader = PdfReader(str(_write(tmp_path, doc.pdf)))
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4, 1), round(float(box.height) / 72 * 25.4, 1)) == (
        85.6,
        54.0,
    )
    front, back = pdftotext(doc.pdf)
    text = squash(front)
    assert in_order(
        text,
        [
            "国民健康保険資格確認書",
            "有効期限令和9年7月31日" if member.valid_until == date(2027, 7, 31) else "有効期限",
            "被保険者等記号・番号",
            f"記号{member.symbol}",
            f"番号{member.number}",
            f"（枝番{member.branch}）",
            "氏名",
            squash(person.name),
            "生年月日昭和25年4月1日",
            "性別",
            "交付年月日令和8年11月27日",
            "限度区分区分Ⅱ",
            "一部負担金の割合2割",
            "発効期日令和8年8月1日",
            f"保険者番号{export.town.nhi_insurer_number}",
            "保険者名称聖籠町国民健康保険",
        ],
    )
    assert "発行番号" in text and "1/2" in text and "2/2" in squash(back)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "300",
            "-png",
            "-f",
            "2",
            "-l",
            "2",
            str(tmp_path / "doc.pdf"),
            str(tmp_path / "back"),
        ],
        check=True,
        timeout=60,
    )
    scanned = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(next(tmp_path.glob("back*")))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert scanned.stdout.split() == doc.payload.split()


def test_card_omits_copay_under_70_and_limit_category_unless_asked(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    member = replace(
        next(m for m in export.nhi_members if not m.has_my_number_insurance), limit_category="区分Ⅱ"
    )
    person = replace(
        next(r for r in export.residents if r.id == member.resident_id), birth_date=date(1990, 1, 1)
    )
    doc = render_eligibility_card(make_issue(), member, person, signers["15307"], registry=registry)
    text = squash(pdftotext(doc.pdf)[0])
    assert "一部負担金の割合" not in text and "限度区分" not in text
    with pytest.raises(DocumentRefused):
        render_eligibility_card(
            make_issue(),
            replace(member, has_my_number_insurance=True),
            person,
            signers["15307"],
            registry=registry,
        )


def test_copay_exemption_certificate(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    member = export.nhi_members[0]
    person = next(r for r in export.residents if r.id == member.resident_id)
    doc = render_copay_exemption(
        make_issue(host_office="出雲崎町役場", stale=True),
        member,
        person,
        "新潟県北蒲原郡聖籠町大字次第浜1番地",
        signers["15307"],
        disaster="令和8年新潟県沖地震",
        valid_from=date(2026, 11, 27),
        valid_until=date(2027, 2, 28),
        registry=registry,
    )
    text = squash(pdftotext(doc.pdf)[0])
    assert in_order(
        text,
        [
            "国民健康保険一部負担金免除証明書",
            "保険者番号",
            "保険者名称",
            "被保険者等記号・番号",
            "氏名",
            "生年月日",
            "性別",
            "住所",
            "免除の期間令和8年11月27日から令和9年2月28日まで",
            "免除の理由令和8年新潟県沖地震による",
            "国民健康保険法第44条第1項",
            "新潟県北蒲原郡聖籠町長",
            "令和8年11月26日2時現在の記録による",
            "出雲崎町役場に設置した聖籠町の臨時窓口",
            "普通紙",
        ],
    )


def _write(tmp_path: Path, pdf: bytes) -> Path:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return path


def test_eligibility_notice_for_a_my_number_insurance_holder(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    people = {r.id: r for r in export.residents}
    member = next(m for m in export.nhi_members if m.has_my_number_insurance and not m.lost)
    person = people[member.resident_id]
    doc = render_eligibility_notice(
        make_issue(), member, person, "新潟県北蒲原郡聖籠町大字三賀1番地", signers["15307"],
        registry=registry,
    )  # fmt: skip
    text = squash("".join(pdftotext(doc.pdf)))
    assert in_order(
        text,
        ["資格情報のお知らせ", "住所", "氏名", squash(person.name), "生年月日", "性別",
         "被保険者等記号・番号", member.number, "資格取得年月日", "一部負担金の割合",
         "保険者番号", export.town.nhi_insurer_number, "保険者名称", "交付年月日",
         "このお知らせだけでは受診できません", "発行番号"],
    )  # fmt: skip
    with pytest.raises(DocumentRefused):  # no マイナ保険証: a 資格確認書 instead
        plain = replace(member, has_my_number_insurance=False)
        render_eligibility_notice(
            make_issue(), plain, person, "", signers["15307"], registry=registry
        )
