"""Fee, 減免 and the terminal's printer at the counter: the box's counter.json maps the
clerk's terminal to a real CUPS queue backed by a real IPP Everywhere printer
(ippeveprinter, which needs D-Bus and Avahi: scripts/services.sh); the request form shows
the town's fee and the disaster 減免, and "print to this terminal's printer" sends the
numbered copy through cupsd to the printer, which spools the same document."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from counter_federation import CounterBox, audit_entries, counter_box, csrf

from shared.export_csv import read_town

REPO = Path(__file__).resolve().parents[2]
ACCESS_LOG = Path("/var/log/cups/access_log")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "services.sh"), "start"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    root = tmp_path_factory.mktemp("printer")
    spool = root / "spool"
    spool.mkdir()
    port = _free_port()
    log = (root / "ippeveprinter.log").open("wb")
    printer = subprocess.Popen(
        ["ippeveprinter", "-c", "/bin/true", "-d", str(spool), "-k", "-p", str(port),
         "-n", "localhost", "-f", "application/pdf", f"RenkeiCounter{os.getpid()}{port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root,
    )  # fmt: skip
    name = f"renkei_counter_{os.getpid()}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert printer.poll() is None, (root / "ippeveprinter.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "ippeveprinter is not listening"
                time.sleep(0.1)
        subprocess.run(
            ["lpadmin", "-p", name, "-E", "-v", f"ipp://localhost:{port}/ipp/print",
             "-m", "everywhere", "-o", "printer-is-shared=false"],
            check=True, timeout=60,
        )  # fmt: skip
        yield name, spool
    finally:
        subprocess.run(["cancel", "-a", name], check=False, timeout=30)
        subprocess.run(["lpadmin", "-x", name], check=False, timeout=30)
        printer.terminate()
        printer.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def fed(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path, queue: tuple[str, Path]
) -> Iterator[CounterBox]:
    config = {
        "terminals": {"T02": {"addresses": ["127.0.0.1"], "queue": queue[0], "printer": "P03",
                              "label": "住民課 窓口2"}},
        "towns": {"15307": {"fee_exemption": True}},
        "stale_after_minutes": 10**7,  # this box's supervisors accept old data without amber
    }  # fmt: skip
    with counter_box(tmp_path_factory.mktemp("counter"), small_export_dir, config) as box:
        yield box


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    return re.sub(r"\s+", "", out.stdout)


def test_fee_reduction_and_printing_on_the_terminals_queue(
    fed: CounterBox, queue: tuple[str, Path], small_export_dir: Path, tmp_path: Path
) -> None:
    town = read_town(small_export_dir / "15307")
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    person = next(r for r in town.residents if r.removal is None and r.id not in blocked)
    with fed.client() as client:
        fed.log_in(client)
        page = client.get(f"/resident/{person.id}")
        assert "1通 300円" in page.text  # the town's 手数料 table
        assert "最新ではありません" not in page.text and "データの時点" in page.text
        assert "災害減免を適用する" in page.text
        assert "この端末のプリンタ（住民課 窓口2）で印刷" in page.text
        form = {
            "csrf_token": csrf(page.text), "document": "juminhyo", "subject": person.id,
            "requester": "本人", "applicant_name": person.name, "applicant_id": person.id,
            "identity": "顔写真付き書類1点", "documents": "運転免許証", "output": "print",
        }  # fmt: skip
        paid = client.post("/issue", data=form)
        assert paid.status_code == 200 and "印刷しました（ジョブ" in paid.text, paid.text[-800:]
        assert "手数料：300円" in paid.text and "領収書番号" in paid.text
        waived = client.post("/issue", data={**form, "reduction": "disaster"})
        assert "手数料：0円（減免：災害減免）" in waived.text, waived.text[-800:]
        number = re.search(r"\d{8}-15307-B[A-Z2-7]{8}-T02-P03-\d{6}", waived.text)
        assert number, waived.text[-800:]  # the terminal and printer codes in the 発行番号
        job = re.search(r"ジョブ (\S+?)）", waived.text)
        assert job
        kept = client.get(f"/printed/{number.group(0)}.pdf")
        assert kept.status_code == 200
    deadline = time.monotonic() + 60
    while (
        job.group(1)
        not in subprocess.run(
            ["lpstat", "-W", "completed", "-o", queue[0]], capture_output=True, text=True
        ).stdout
    ):
        assert time.monotonic() < deadline, "the job did not complete"
        time.sleep(0.3)
    log = ACCESS_LOG.read_text(errors="replace")
    assert re.search(rf"POST /printers/{queue[0]} .*(Print-Job|Send-Document) successful-ok", log)
    original = tmp_path / "kept.pdf"
    original.write_bytes(kept.content)
    deadline = time.monotonic() + 20
    texts: list[str] = []
    while time.monotonic() < deadline:
        spooled = [p for p in queue[1].rglob("*") if p.is_file() and p.read_bytes()[:5] == b"%PDF-"]
        texts = [_text(p) for p in spooled]
        if _text(original) in texts:
            break
        time.sleep(0.3)
    # The printer received the numbered copy that is kept on the box (cupsd rewrites the
    # PDF, so the text is compared, not the bytes).
    assert _text(original) in texts and number.group(0) in _text(original)
    report, entries = audit_entries(fed, fed.clerk)
    assert report.ok, report.summary()
    printed = [e.details for e in entries if e.kind == "print"]
    assert {"number": number.group(0), "job": job.group(1), "queue": queue[0]}.items() <= next(
        d for d in printed if d["number"] == number.group(0)
    ).items()
    issued = {e.details["number"]: e.details for e in entries if e.kind == "issuance"}
    waived_entry = issued[number.group(0)]
    assert waived_entry["fee"] == 0 and waived_entry["reduction"] == "災害減免"
