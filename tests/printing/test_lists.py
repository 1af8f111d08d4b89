"""全住民一覧 and 避難行動要支援者名簿: order, district headers, check columns, copy number,
page n/N, masking, consent, and the first page rendered alone for preview."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from pdf_inspect import IssueFactory, pdftotext

from printing.errors import DocumentRefused
from printing.fonts import FontRegistry
from printing.layout import Signer
from printing.lists import (
    CHECKS,
    MASKED,
    ROWS_PER_PAGE,
    address_sort_key,
    page_count,
    preview_first_page,
    render_resident_list,
    render_support_register,
)
from shared.model import TownExport


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_address_sort_key_orders_by_numbers() -> None:
    addresses = ["10番地3", "2番地", "10番地", "1234番地5", "2番地1"]
    assert sorted(addresses, key=address_sort_key) == [
        "2番地",
        "2番地1",
        "10番地",
        "10番地3",
        "1234番地5",
    ]


def test_resident_list_by_district_with_checks_copy_number_and_page_numbers(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    doc = render_resident_list(
        make_issue(copy_number=4),
        export.households,
        export.residents,
        signers["15307"],
        registry=registry,
    )
    pages = pdftotext(doc.pdf)
    assert len(pages) == doc.pages
    households = {h.id: h for h in export.households}
    living = [r for r in export.residents if not r.is_removed]
    seen_districts: list[str] = []
    rows = 0
    for n, page in enumerate(pages, start=1):
        flat = squash(page)
        assert f"{n}/{doc.pages}" in flat and "配布番号第4号" in flat
        district = re.search(r"聖籠町\s+大字\s*(\S+)", page)
        assert district, page[:200]
        if not seen_districts or seen_districts[-1] != district.group(1):
            assert district.group(1) not in seen_districts  # each district in one run
            seen_districts.append(district.group(1))
        page_rows = page.count("□在宅")
        assert 0 < page_rows <= ROWS_PER_PAGE
        rows += page_rows
        ids = re.findall(r"\b(\d{12})\b", page)
        assert {households[i].district for i in ids} == {district.group(1)}
        keys = [address_sort_key(households[i].address) for i in ids]
        assert keys == sorted(keys)
    assert rows == len(living)
    assert squash(CHECKS) in squash(pages[0])
    assert sorted(seen_districts) == sorted({households[r.household_id].district for r in living})


def test_people_under_protection_are_masked_on_copies_leaving_the_office(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    household = export.households[0]
    members = [r for r in export.residents if r.household_id == household.id and not r.is_removed]
    protected = members[0]
    doc = render_resident_list(
        make_issue(copy_number=1),
        [household],
        members,
        signers["15307"],
        masked_ids=frozenset({protected.id}),
        registry=registry,
    )
    text = squash("".join(pdftotext(doc.pdf)))
    assert squash(MASKED) in text
    assert squash(protected.kana) not in text and squash(household.address) not in text
    inside = render_resident_list(
        make_issue(copy_number=2),
        [household],
        members,
        signers["15307"],
        masked_ids=frozenset({protected.id}),
        leaving_office=False,
        registry=registry,
    )
    assert squash(protected.kana) in squash("".join(pdftotext(inside.pdf)))
    with pytest.raises(DocumentRefused):
        render_resident_list(
            make_issue(), [household], members, signers["15307"], registry=registry
        )


def test_first_page_renders_alone_before_the_rest(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    doc = render_resident_list(
        make_issue(copy_number=1),
        export.households,
        export.residents,
        signers["15307"],
        render=False,
        registry=registry,
    )
    assert doc.pdf == b"" and doc.pages > 1
    first = pdftotext(doc.first_page_pdf())
    full = pdftotext(doc.render())
    assert len(first) == 1 and len(full) == doc.pages
    assert first[0] == full[0]
    assert f"1/{doc.pages}" in squash(first[0])


def test_preview_of_page_one_before_the_list_is_laid_out(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    issue = make_issue(copy_number=1)
    preview = pdftotext(
        preview_first_page(issue, export.households, export.residents, registry=registry)
    )
    doc = render_resident_list(
        issue, export.households, export.residents, signers["15307"], registry=registry
    )
    assert doc.pages == page_count(export.households, export.residents)
    assert len(preview) == 1
    final = pdftotext(doc.pdf)[0]
    assert f"1/{doc.pages}" in squash(preview[0]) and "プレビュー" in preview[0]
    rows = [line for line in final.splitlines() if "□在宅" in line]
    assert rows and rows == [line for line in preview[0].splitlines() if "□在宅" in line]


def test_support_register_consent_and_decision(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> None:
    export = exports["15307"]
    people = {r.id: r for r in export.residents}
    households = {h.id: h for h in export.households}
    needs = [n for n in export.support_needs if not people[n.resident_id].is_removed]
    assert any(not n.consented for n in needs) or needs
    refused = next(iter(needs))
    needs = [replace(refused, consented=False), *needs[1:]]
    normal = render_support_register(
        make_issue(copy_number=1), needs, people, households, signers["15307"], registry=registry
    )
    text = squash("".join(pdftotext(normal.pdf)))
    assert "平常時提供（本人同意者のみ）" in text
    assert squash(people[refused.resident_id].kana) not in text
    for need in needs[1:]:
        if need.consented:
            assert squash(need.reason) in text
    disaster = render_support_register(
        make_issue(copy_number=2),
        needs,
        people,
        households,
        signers["15307"],
        decision_ref="R8-防災-001",
        registry=registry,
    )
    text = squash("".join(pdftotext(disaster.pdf)))
    assert "災害時提供（本人同意なし・町村長の判断R8-防災-001）" in text
    assert squash(people[refused.resident_id].kana) in text
    header = [
        "氏名",
        "フリガナ",
        "生年月日",
        "性別",
        "住所",
        "連絡先",
        "避難支援等を必要とする事由",
    ]
    assert all(h in text for h in header)
