"""Every counter document through the real box over HTTPS, with plain forms (no
JavaScript): the request form offers it, the issuance rules decide, a 発行番号 is
allocated and registered, the PDF says what the document must say — or the refusal is
explained in Japanese. The 全住民一覧 and 要支援者名簿 come from the districts page."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from counter_federation import PASSWORD, CounterBox, audit_entries, counter_box, csrf

from shared.export_csv import read_town
from shared.model import FilingStatus, TownExport

TODAY = date.today()
ISSUED: list[str] = []  # 発行番号 issued by the tests of this module, in order
SPOILED: list[tuple[str, str]] = []  # (voided number, its reprint)
EXEMPTION = {
    "disaster": "令和8年11月26日 新潟県下越地方の地震",
    "valid_from": "2026-11-26",
    "valid_until": "2027-02-28",
}


@pytest.fixture(scope="module")
def town(small_export_dir: Path) -> TownExport:
    return read_town(small_export_dir / "15307")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[CounterBox]:
    config = {"towns": {"15307": {"fee_exemption": True, "copay_exemption": EXEMPTION}}}
    with counter_box(tmp_path_factory.mktemp("counter"), small_export_dir, config) as box:
        yield box


@pytest.fixture(scope="module")
def client(fed: CounterBox) -> Iterator[httpx.Client]:
    with fed.client() as c:
        fed.log_in(c)
        yield c


def _free(town: TownExport) -> set[str]:
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    return {r.id for r in town.residents if r.removal is None and r.id not in blocked}


def pdftext(content: bytes, tmp_path: Path, name: str) -> str:
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(content)
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def request(
    client: httpx.Client, document: str, subject: str, **extra: Any
) -> tuple[httpx.Response, str]:
    page = client.get(f"/resident/{subject}", params={"document": document})
    assert page.status_code == 200, page.text[-400:]
    form: dict[str, Any] = {
        "csrf_token": csrf(page.text), "document": document, "subject": subject,
        "requester": "本人", "applicant_name": "窓口　来た人", "applicant_id": subject,
        "identity": "顔写真付き書類1点", "documents": "運転免許証", "output": "download",
    }  # fmt: skip
    form.update(extra)
    return client.post("/issue", data=form), page.text


def issued(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text[-800:]
    assert response.headers["content-type"] == "application/pdf", response.text[-800:]
    return response.headers["content-disposition"].split('filename="')[1].split(".pdf")[0]


def test_every_document_is_offered_and_issued(
    fed: CounterBox, client: httpx.Client, town: TownExport, tmp_path: Path
) -> None:
    free = _free(town)
    fy = TODAY.year if TODAY.month >= 6 else TODAY.year - 1
    taxed = next(a for a in town.tax_assessments if a.resident_id in free
                 and a.fiscal_year == fy and a.taxable and a.filing is not FilingStatus.NOT_FILED
                 and town.town.name in a.address_on_jan1)  # fmt: skip
    untaxed = next(a for a in town.tax_assessments if a.resident_id in free
                   and a.fiscal_year == fy and not a.taxable
                   and a.filing is not FilingStatus.NOT_FILED
                   and town.town.name in a.address_on_jan1)  # fmt: skip
    bill = next(i for i in town.installments if i.taxpayer_id in free)
    unpaid_vehicles = {i.vehicle_id for i in town.installments if i.vehicle_id and i.outstanding}
    vehicle = next(v for v in town.vehicles if v.owner_id in free and v.id not in unpaid_vehicles)
    card = next(m for m in town.nhi_members if m.resident_id in free and m.lost is None
                and not m.has_my_number_insurance)  # fmt: skip
    notice = next(m for m in town.nhi_members if m.resident_id in free and m.lost is None
                  and m.has_my_number_insurance)  # fmt: skip
    person = next(r for r in town.residents if r.id == taxed.resident_id)
    numbers = []
    fiscal = {"fiscal_year": str(fy)}
    payment = {"fiscal_year": str(bill.fiscal_year), "tax_kind": bill.tax.value}
    cases: list[tuple[str, str, dict[str, Any], list[str]]] = [
        ("juminhyo", person.id, {"whole_household": "1", "items": "head"},
         ["住民票の写し", "世帯全員の住民票の原本と相違ない", "世帯主"]),
        ("juminhyo", person.id, {"form": "individual"},
         ["住民票の写し", "住民票の原本と相違ない"]),
        ("kazei", taxed.resident_id, fiscal, ["所得・課税証明書", "合計所得金額"]),
        ("hikazei", untaxed.resident_id, fiscal, ["非課税証明書", "非課税である"]),
        ("nozei", bill.taxpayer_id, payment, ["納税証明書", "納期未到来額", "滞納額"]),
        ("keijidosha_keizoku", vehicle.owner_id, {"vehicle_id": vehicle.id},
         ["継続検査用", vehicle.chassis_number]),
        ("shikaku_kakunin", card.resident_id, {}, ["国民健康保険資格確認書", "保険者番号"]),
        ("shikaku_oshirase", notice.resident_id, {},
         ["資格情報のお知らせ", "このお知らせだけでは受診できません"]),
        ("menjo", card.resident_id, {}, ["一部負担金免除証明書", "新潟県下越地方の地震"]),
    ]  # fmt: skip
    for document, subject, extra, expected in cases:
        response, form_page = request(client, document, subject, **extra)
        assert f'name="document" value="{document}"' in form_page
        assert 'class="asof stale"' in form_page  # the export is from the day before
        number = issued(response).split("-", 1)[1]
        text = pdftext(response.content, tmp_path, f"{document}-{len(numbers)}")
        for words in (*expected, "発行番号", number):
            assert words in text.replace(" ", ""), (document, words, text[:1500])
        numbers.append(number)
        ISSUED.append(number)
    assert len(set(numbers)) == len(numbers)  # one number per copy, never reused
    # The kept copy is served again by its number, byte for byte the same document.
    again = client.get(f"/printed/{numbers[0]}.pdf")
    assert again.status_code == 200 and again.content[:5] == b"%PDF-"


def test_refusals_are_explained_in_japanese(client: httpx.Client, town: TownExport) -> None:
    free = _free(town)
    fy = TODAY.year if TODAY.month >= 6 else TODAY.year - 1
    taxed = next(a for a in town.tax_assessments if a.resident_id in free
                 and a.fiscal_year == fy and a.taxable)  # fmt: skip
    response, _ = request(client, "hikazei", taxed.resident_id, fiscal_year=str(fy))
    assert response.status_code == 200 and "課税されているため" in response.text
    assert "課税（所得）証明書をご請求ください" in response.text
    response, _ = request(client, "kazei", taxed.resident_id, fiscal_year=str(fy),
                          requester="第三者", applicant_id="", tp_ground="その他正当な理由",
                          tp_purpose="債権回収", tp_submitted_to="裁判所")  # fmt: skip
    # The export is older than the 支援措置 freshness limit: only the person is served.
    assert "本人以外への交付はできません" in response.text
    assert "ご本人以外からのご請求にはお応えできません" in response.text
    unpaid = next(i for i in town.installments if i.vehicle_id and i.outstanding
                  and i.taxpayer_id in free)  # fmt: skip
    vehicle = next(v for v in town.vehicles if v.id == unpaid.vehicle_id)
    if vehicle.owner_id in free:
        response, _ = request(client, "keijidosha_keizoku", vehicle.owner_id,
                              vehicle_id=vehicle.id)  # fmt: skip
        assert "未納があります" in response.text
    # A マイナ保険証 holder asking for the card: refused by the rules before a number is
    # drawn (the card renderer would refuse only after, voiding the number), pointing
    # to the お知らせ.
    holder = next(m for m in town.nhi_members if m.resident_id in free and m.lost is None
                  and m.has_my_number_insurance)  # fmt: skip
    response, _ = request(client, "shikaku_kakunin", holder.resident_id)
    assert response.status_code == 200, response.text[-400:]
    assert "資格確認書ではなく資格情報のお知らせの対象です" in response.text
    assert "資格情報のお知らせを交付します" in response.text
    assert "無効にしました" not in response.text
    assert "application/pdf" not in response.headers["content-type"]
    garbage, _ = request(client, "kazei", taxed.resident_id, fiscal_year="令和")
    assert garbage.status_code == 400 and "年度は数字で入力してください" in garbage.text


def test_a_name_without_a_glyph_is_an_alert_and_its_number_is_voided(
    client: httpx.Client, town: TownExport
) -> None:
    """This box has no town 外字 font: a name with the town's own 外字 cannot be drawn
    exactly, so nothing is printed — the clerk sees the alert, the number is voided."""
    pua = next(g.replacement for g in town.gaiji if g.target.value == "町村外字フォント")
    person = next(r for r in town.residents if pua in r.name and r.id in _free(town))
    response, _ = request(client, "juminhyo", person.id)
    assert response.status_code == 400 and "application/pdf" not in response.headers["content-type"]
    assert "印字できるフォントがありません" in response.text
    assert "は無効にしました。何も印刷していません" in response.text


def test_lists_from_the_district_page(
    fed: CounterBox, client: httpx.Client, town: TownExport, tmp_path: Path
) -> None:
    page = client.get("/districts")
    assert page.status_code == 200 and "全住民一覧を出力する" in page.text
    assert "要支援者名簿を出力する" not in page.text  # a clerk without the role
    district = page.text.split('<option value="')[1].split('"')[0]
    form = {"csrf_token": csrf(page.text), "list": "all", "district": district,
            "recipient": "消防団第3分団", "purpose": "安否確認", "leaves_office": "1"}  # fmt: skip
    response = client.post("/list", data=form)
    number = issued(response)
    ISSUED.append(number.split("-", 1)[1])
    text = pdftext(response.content, tmp_path, "list")
    assert "全住民一覧" in text and district in text and "配布番号" in text
    denied = client.post("/list", data={**form, "list": "support"})
    assert denied.status_code == 400 and "監督者・代表者だけ" in denied.text
    with fed.client() as boss:
        fed.log_in(boss, fed.supervisor)
        page = boss.get("/districts")
        assert "要支援者名簿を出力する" in page.text
        support = {"csrf_token": csrf(page.text), "list": "support",
                   "recipient": "民生委員", "purpose": "避難支援"}  # fmt: skip
        response = boss.post("/list", data=support)
        issued(response)
        assert "避難行動要支援者名簿" in pdftext(response.content, tmp_path, "support")
    assert number.startswith("zenjumin-")


def test_a_jammed_copy_is_voided_and_reprinted_under_a_new_number(
    client: httpx.Client, town: TownExport, tmp_path: Path
) -> None:
    person = sorted(_free(town))[7]
    response, page = request(client, "juminhyo", person)
    jammed = issued(response).split("-", 1)[1]
    spoil = {"csrf_token": csrf(page), "number": jammed, "reason": "紙詰まり", "sheets": "1"}
    again = client.post("/spoil", data=spoil)
    fresh = issued(again).split("-", 1)[1]
    assert fresh != jammed and fresh in pdftext(again.content, tmp_path, "reprint")
    ISSUED.extend([jammed, fresh])
    twice = client.post("/spoil", data=spoil)
    assert twice.status_code == 400 and "すでに無効" in twice.text
    SPOILED.append((jammed, fresh))


def test_a_normal_box_is_not_a_drill_box(fed: CounterBox, client: httpx.Client) -> None:
    """The other side of test_drill_box.py: mode "normal", live numbers, no banner, and
    `renkei drill --against` refuses this box."""
    from renkei.drill.against import NotDrillMode, require_drill_mode

    assert client.get("/api/health").json()["mode"] == "normal"
    assert "訓練モード" not in client.get("/").text
    assert ISSUED and not any(n.startswith("D") for n in ISSUED)
    with pytest.raises(NotDrillMode, match="訓練モードではありません"):
        require_drill_mode(fed.url, fed.ca_file)


def test_every_act_is_audited_and_the_chain_verifies(fed: CounterBox, tmp_path: Path) -> None:
    """Runs after the tests above: their issuances, refusals, list copies and the copy
    served again are in the box's audit chain (sealed to the town), which verifies; a
    `renkei reprint` adds an entry in the clerk's own chain."""
    assert ISSUED and SPOILED, "run with the module's earlier tests"
    reprint = subprocess.run(
        [sys.executable, "-m", "renkei", "reprint", ISSUED[0], "--data", str(fed.data),
         "--town", "15307", "--login", fed.clerk, "--out", str(tmp_path / "again.pdf")],
        env={**os.environ, "RENKEI_PASSWORD": PASSWORD}, capture_output=True, text=True,
    )  # fmt: skip
    assert reprint.returncode == 0, reprint.stderr
    report, entries = audit_entries(fed, fed.clerk)
    assert report.ok, report.summary()
    issuance = {e.details["number"]: e.details for e in entries if e.kind == "issuance"}
    for number in ISSUED:
        assert number in issuance, number
    assert issuance[ISSUED[0]]["document"] == "juminhyo"
    assert issuance[ISSUED[0]]["clerk"] == fed.clerk and issuance[ISSUED[0]]["fee"] == 300
    assert any(d["list_number"].startswith("L-15307-") for d in issuance.values())
    refusals = [e.details for e in entries if e.kind == "refusal"]
    assert any(d["code"] == "tax_taxable" for d in refusals)
    assert any(d["code"] == "nhi_has_my_number_insurance" for d in refusals)
    for jammed, fresh in SPOILED:
        spoiled = next(e.details for e in entries if e.kind == "spoiled")
        assert (spoiled["number"], spoiled["reason"]) == (jammed, "紙詰まり")
        assert issuance[fresh]["reprint_of"] == jammed
    reprints = [e.details for e in entries if e.kind == "reprint"]
    assert {d["how"] for d in reprints if d["number"] == ISSUED[0]} == {
        "download",
        "renkei reprint",
    }


def test_garbage_never_gives_a_server_error(client: httpx.Client, town: TownExport) -> None:
    """Every counter route with garbage: a clear 4xx or a refusal, never a 5xx."""
    page = client.get("/districts")
    token = csrf(page.text)
    person = next(iter(_free(town)))
    junk = ["", "x" * 500, "../../etc/passwd", "<script>", "令和", "-1", "99999999999", "\u0000"]
    for value in junk:
        q = quote(value or "x", safe="")
        for url in (f"/resident/{q}", f"/resident/{person}?document={q}", f"/printed/{q}.pdf",
                    f"/intake/{q}/receipt.pdf", f"/fonts/names-{q}.ttf",
                    f"/intake?subject={q}"):  # fmt: skip
            assert client.get(url).status_code < 500, url
        for field in ("document", "subject", "requester", "identity", "fiscal_year", "tax_kind",
                      "vehicle_id", "copies", "items", "poa_date", "legal_basis", "tp_ground",
                      "pro_profession", "output", "form"):  # fmt: skip
            form = {"csrf_token": token, "document": "kazei", "subject": person,
                    "requester": "本人", "identity": "顔写真付き書類1点", field: value}  # fmt: skip
            response = client.post("/issue", data=form)
            assert response.status_code < 500, (field, value, response.text[-300:])
        for route, what in (("/list", "list"), ("/export", "what"), ("/intake", "kind")):
            response = client.post(route, data={"csrf_token": token, what: value,
                                                "district": value, "subject": value})  # fmt: skip
            assert response.status_code < 500, (route, value, response.text[-300:])
