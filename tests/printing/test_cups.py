"""Printing through a real cupsd to a real IPP Everywhere printer (ippeveprinter, which
needs D-Bus and Avahi: scripts/services.sh), retries on server-error-busy, and the
per-printer calibration offset."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pdf_inspect import IssueFactory, pdftotext
from PIL import Image, ImageChops
from pypdf import PdfReader

from printing.certificates.juminhyo import JuminhyoItems, render_juminhyo
from printing.cups import (
    Calibration,
    CalibrationStore,
    calibration_sheet,
    print_document,
    submit_ipp,
    submit_pdf,
)
from printing.errors import PrintJobError
from printing.fonts import FontRegistry
from printing.layout import PrintedDocument, Signer
from shared.model import TownExport

REPO = Path(__file__).resolve().parents[2]
ACCESS_LOG = Path("/var/log/cups/access_log")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ippeveprinter exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"ippeveprinter not listening: {log.read_text()}")


@pytest.fixture(scope="module")
def services() -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "services.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def start_printer(tmp_path: Path, command: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    spool = tmp_path / "spool"
    spool.mkdir()
    log = tmp_path / "ippeveprinter.log"
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "ippeveprinter",
                "-c",
                command,
                "-d",
                str(spool),
                "-k",
                "-p",
                str(port),
                "-n",
                "localhost",
                "-f",
                "application/pdf",
                f"RenkeiTest{os.getpid()}{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
        )
    _wait_port(port, proc, log)
    return proc, f"ipp://localhost:{port}/ipp/print", spool


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def printer(tmp_path: Path, services: None) -> Iterator[tuple[str, Path]]:
    proc, uri, spool = start_printer(tmp_path, "/bin/true")
    try:
        yield uri, spool
    finally:
        stop(proc)


@pytest.fixture
def queue(printer: tuple[str, Path]) -> Iterator[str]:
    name = f"renkei_print_{os.getpid()}"
    subprocess.run(
        [
            "lpadmin",
            "-p",
            name,
            "-E",
            "-v",
            printer[0],
            "-m",
            "everywhere",
            "-o",
            "printer-is-shared=false",
        ],
        check=True,
        timeout=60,
    )
    try:
        yield name
    finally:
        subprocess.run(["cancel", "-a", name], check=False, timeout=30)
        subprocess.run(["lpadmin", "-x", name], check=False, timeout=30)


@pytest.fixture
def certificate(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> PrintedDocument:
    export = exports["15307"]
    household = export.households[2]
    members = [r for r in export.residents if r.household_id == household.id]
    return render_juminhyo(
        make_issue(host_office="出雲崎町役場"),
        household,
        members,
        JuminhyoItems(),
        signers["15307"],
        whole_household=True,
        registry=registry,
    )


def _pngs(pdf: Path, out: Path) -> list[Image.Image]:
    subprocess.run(
        ["pdftoppm", "-r", "60", "-gray", "-png", str(pdf), str(out)], check=True, timeout=60
    )
    return [Image.open(p) for p in sorted(out.parent.glob(out.name + "*.png"))]


def test_job_passes_through_cupsd_and_the_printer_gets_the_same_pages(
    certificate: PrintedDocument,
    queue: str,
    printer: tuple[str, Path],
    tmp_path: Path,
) -> None:
    job = print_document(certificate, queue)
    assert job.job_id.startswith(queue) and job.attempts == 1
    deadline = time.monotonic() + 60
    while (
        job.job_id
        not in subprocess.run(
            ["lpstat", "-W", "completed", "-o", queue], capture_output=True, text=True
        ).stdout
    ):
        assert time.monotonic() < deadline, "job did not complete"
        time.sleep(0.2)
    log = ACCESS_LOG.read_text(errors="replace")
    assert re.search(rf"POST /printers/{queue} .*(Print-Job|Send-Document) successful-ok", log)
    deadline = time.monotonic() + 20
    spooled: list[Path] = []
    while not spooled and time.monotonic() < deadline:
        spooled = [
            p for p in printer[1].iterdir() if p.is_file() and p.read_bytes()[:5] == b"%PDF-"
        ]
        time.sleep(0.1)
    assert spooled, list(printer[1].iterdir())
    original = tmp_path / "original.pdf"
    original.write_bytes(certificate.pdf)
    assert pdftotext(spooled[0].read_bytes()) == pdftotext(certificate.pdf)
    ours = _pngs(original, tmp_path / "ours")
    theirs = _pngs(spooled[0], tmp_path / "printed")
    assert len(ours) == len(theirs) == certificate.pages
    for a, b in zip(ours, theirs, strict=True):
        # cupsd's pdftopdf rewrites the PDF (same fonts, same text); what differs is a
        # sub-pixel placement: a few anti-aliased edge pixels, never a glyph.
        assert a.size == b.size
        histogram = ImageChops.difference(a.convert("L"), b.convert("L")).histogram()
        assert sum(histogram[33:]) < 0.001 * a.size[0] * a.size[1]


def test_ipp_submission_retries_while_the_printer_is_busy(
    tmp_path: Path, services: None, certificate: PrintedDocument
) -> None:
    slow = tmp_path / "slow-print.sh"
    slow.write_text("#!/bin/sh\nsleep 1\n")
    slow.chmod(0o755)
    proc, uri, _spool = start_printer(tmp_path, str(slow))
    try:
        first = submit_ipp(certificate.pdf, uri, title="first", retries=0)
        assert first.attempts == 1
        with pytest.raises(PrintJobError, match="0x0507"):
            submit_ipp(certificate.pdf, uri, title="refused", retries=0)
        second = submit_ipp(certificate.pdf, uri, title="second", backoff_s=0.2, retries=6)
        assert second.attempts > 1 and second.job_id != first.job_id
    finally:
        stop(proc)


def test_lp_retries_only_on_busy() -> None:
    calls: list[list[str]] = []

    def busy_twice(cmd: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        calls.append(cmd)
        if len(calls) < 3:
            return subprocess.CompletedProcess(cmd, 1, b"", b"lp: server-error-busy\n")
        return subprocess.CompletedProcess(cmd, 0, b"request id is office-7 (1 file(s))\n", b"")

    result = submit_pdf(b"%PDF-", "office", title="t", runner=busy_twice, sleep=lambda s: None)
    assert (result.job_id, result.attempts) == ("office-7", 3)
    assert calls[0][:3] == ["lp", "-d", "office"]

    def refused(cmd: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(
            cmd, 1, b"", b"lp: The printer or class does not exist.\n"
        )

    with pytest.raises(PrintJobError, match="does not exist"):
        submit_pdf(b"%PDF-", "office", title="t", runner=refused, sleep=lambda s: None)


def test_calibration_shifts_the_printed_content(
    tmp_path: Path, certificate: PrintedDocument, registry: FontRegistry
) -> None:
    store = CalibrationStore(tmp_path / "calibration.json")
    assert store.get("office") == Calibration()
    store.set("office", Calibration(dx_mm=2.0, dy_mm=-1.0))
    assert CalibrationStore(tmp_path / "calibration.json").get("office") == Calibration(2.0, -1.0)
    with pytest.raises(ValueError):
        store.set("office", Calibration(dx_mm=25.0))
    sent: list[bytes] = []

    def capture(cmd: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        sent.append(data)
        return subprocess.CompletedProcess(cmd, 0, b"request id is office-1 (1 file(s))\n", b"")

    print_document(certificate, "office", calibration=store.get("office"), runner=capture)
    print_document(certificate, "office", runner=capture)
    shifted = PdfReader(_path(tmp_path, "s.pdf", sent[0])).pages[0].get_contents()
    plain = PdfReader(_path(tmp_path, "p.pdf", sent[1])).pages[0].get_contents()
    assert shifted is not None and plain is not None
    # the printer puts content 2 mm right and 1 mm up: shift it 2 mm left and 1 mm down
    assert b"q 1 0 0 1 -5.67 -2.83 cm" in shifted.get_data()
    assert b" cm" not in plain.get_data()[:40]
    assert sent[1] == certificate.pdf
    assert pdftotext(calibration_sheet("15307", registry=registry))[0].count("20,20") == 1


def _path(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
