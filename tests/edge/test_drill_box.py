"""`renkei box --drill`: a training box says so in /api/health (the guard of
`renkei drill --against`), issues every copy as a 見本 in the D number series and shows
the 訓練モード banner on every screen. The normal box's side (mode "normal", no D, no
banner) is checked in test_counter_documents.py against its own box."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from counter_federation import CounterBox, counter_box, csrf

from renkei.drill.against import require_drill_document, require_drill_mode
from shared.export_csv import read_town
from shared.model import TownExport


@pytest.fixture(scope="module")
def town(small_export_dir: Path) -> TownExport:
    return read_town(small_export_dir / "15307")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[CounterBox]:
    with counter_box(tmp_path_factory.mktemp("drillbox"), small_export_dir, drill=True) as box:
        yield box


def test_a_drill_box_says_drill_and_issues_d_series_samples(
    fed: CounterBox, town: TownExport, tmp_path: Path
) -> None:
    health = require_drill_mode(fed.url, fed.ca_file)  # what `renkei drill --against` checks
    assert health["mode"] == "drill"
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    person = next(r for r in town.residents if r.removal is None and r.id not in blocked)
    with fed.client() as client:
        login = client.get("/login")
        assert "訓練モード" in login.text  # before anyone logs in, too
        fed.log_in(client)
        page = client.get(f"/resident/{person.id}", params={"document": "juminhyo"})
        assert page.status_code == 200 and "訓練モード" in page.text
        for screen in ("/", "/alerts"):
            assert "訓練モード" in client.get(screen).text, screen
        form = {
            "csrf_token": csrf(page.text), "document": "juminhyo", "subject": person.id,
            "requester": "本人", "applicant_name": "窓口　来た人", "applicant_id": person.id,
            "identity": "顔写真付き書類1点", "documents": "運転免許証", "output": "download",
        }  # fmt: skip
        response = client.post("/issue", data=form)
    assert response.status_code == 200, response.text[-800:]
    assert response.headers["content-type"] == "application/pdf", response.text[-800:]
    filename = response.headers["content-disposition"].split('filename="')[1].split(".pdf")[0]
    number = filename.split("-", 1)[1]  # juminhyo-<number>
    pdf = tmp_path / "drill.pdf"
    pdf.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout.replace(" ", "")
    assert number.startswith("D"), number
    assert "見本" in text and number in text
    require_drill_document(number, text)  # the drill's own second guard accepts it
