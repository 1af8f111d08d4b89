"""Intake (申請受付) while the data is stale: an application with 受付日, 連絡先 and 送付先
is recorded sealed to the town (its text is nowhere in the box's files), a receipt PDF
comes back, a change report holds back certificates about that person (no change is
processed locally), and the list leaves the box only as a file sealed to the town —
like the 全住民一覧 CSV — which a town clerk opens with `renkei export open`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from counter_federation import PASSWORD, CounterBox, audit_entries, counter_box, csrf
from test_counter_documents import pdftext

from edge.boxkey import box_code
from shared.export_csv import read_town
from shared.model import TownExport

CONTACT = "090-1234-5678"
SEND_TO = "新潟県新潟市中央区学校町通1番町602番地1 避難先気付"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[CounterBox]:
    with counter_box(tmp_path_factory.mktemp("intake"), small_export_dir, {}) as box:
        yield box


def _open(fed: CounterBox, content: bytes, tmp_path: Path, name: str) -> str:
    sealed = tmp_path / name
    sealed.write_bytes(content)
    opened = subprocess.run(
        [sys.executable, "-m", "renkei", "export", "open", str(sealed), "--data", str(fed.data),
         "--town", "15307", "--login", fed.clerk, "--out", str(tmp_path / f"{name}.csv")],
        env={**os.environ, "RENKEI_PASSWORD": PASSWORD}, capture_output=True, text=True,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    return (tmp_path / f"{name}.csv").read_text(encoding="utf-8-sig")


def test_intake_while_stale_receipt_sealed_record_and_export(
    fed: CounterBox, small_export_dir: Path, tmp_path: Path
) -> None:
    town: TownExport = read_town(small_export_dir / "15307")
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    people = [r for r in town.residents if r.removal is None and r.id not in blocked]
    mover, asker = people[3], people[5]
    first, second = (f"U-15307-{box_code(fed.data)}-{n:06d}" for n in (1, 2))
    with fed.client() as client:
        fed.log_in(client)
        page = client.get("/intake")
        assert "記録が最新でないため" in page.text  # the export is from the day before
        base = {"csrf_token": csrf(page.text), "contact": CONTACT}
        receipt = client.post("/intake", data={
            **base, "kind": "certificate", "document": "kazei", "subject": asker.id,
            "applicant_name": asker.name, "send_to": SEND_TO,
        })  # fmt: skip
        assert receipt.headers["content-type"] == "application/pdf", receipt.text[-600:]
        text = pdftext(receipt.content, tmp_path, "receipt").replace(" ", "")
        for words in ("申請受付票", first, "受付日", CONTACT, "送付先",
                      "課税（所得）証明書", "証明書ではありません"):  # fmt: skip
            assert words.replace(" ", "") in text, (words, text)
        change = client.post("/intake", data={
            **base, "kind": "change", "subject": mover.id, "applicant_name": mover.name,
            "details": "転居届（大字藤寄へ）",
        })  # fmt: skip
        assert change.headers["content-type"] == "application/pdf"
        missing = client.post("/intake", data={**base, "kind": "certificate",
                                               "applicant_name": "", "contact": ""})  # fmt: skip
        assert missing.status_code == 400 and "申請者の氏名を入力してください" in missing.text
        # The change was only taken: a certificate about the mover waits for it.
        form_page = client.get(f"/resident/{mover.id}")
        held = client.post("/issue", data={
            "csrf_token": csrf(form_page.text), "document": "juminhyo", "subject": mover.id,
            "requester": "本人", "applicant_name": mover.name, "applicant_id": mover.id,
            "identity": "顔写真付き書類1点", "documents": "運転免許証",
        })  # fmt: skip
        assert "未処理の異動届があります" in held.text
        assert "申請として受け付ける" in held.text
        listing = client.get("/intake")
        assert second in listing.text and CONTACT in listing.text
        again = client.get(f"/intake/{first}/receipt.pdf")
        assert again.content == receipt.content
        exported = client.post("/export", data={"csrf_token": csrf(listing.text),
                                                "what": "intake"})  # fmt: skip
        assert exported.status_code == 200 and SEND_TO.encode() not in exported.content
        districts = client.get("/districts")
        district = districts.text.split('name="district">')[1].split('value="')[1].split('"')[0]
        sealed_list = client.post("/export", data={
            "csrf_token": csrf(districts.text), "what": "list", "district": district,
            "recipient": "災害対策本部", "purpose": "安否確認",
        })  # fmt: skip
        assert sealed_list.status_code == 200, sealed_list.text[-500:]
    rows = list(csv.reader(io.StringIO(_open(fed, exported.content, tmp_path, "intake.rkx"))))
    assert rows[0][:3] == ["受付番号", "受付日時", "種類"]
    assert [r[0] for r in rows[1:]] == [first, second]
    assert rows[1][7:9] == [CONTACT, SEND_TO]
    listed = _open(fed, sealed_list.content, tmp_path, "list.rkx")
    assert listed.startswith(f"配布番号,L-15307-{box_code(fed.data)}-") and district in listed
    # Nothing of the application is plaintext in anything the box wrote.
    for path in fed.data.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert CONTACT.encode() not in blob and SEND_TO.encode() not in blob, path
    report, entries = audit_entries(fed, fed.clerk)
    assert report.ok, report.summary()
    intake = [e.details for e in entries if e.kind == "intake"]
    assert [d["number"] for d in intake] == [first, second]
    exports = {e.details["what"]: e.details for e in entries if e.kind == "export"}
    assert exports["intake"]["rows"] == 2 and exports["list"]["list_number"].startswith("L-")
