"""Capability: cupsd + a driverless IPP Everywhere printer (ippeveprinter).

ippeveprinter listens on 127.0.0.1 only; the CUPS queue is created with
``lpadmin -m everywhere`` (driverless) and is not shared.  A PDF generated
here is printed with ``lp`` and must land, as a document, in the printer's
spool directory.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fpdf import FPDF

CUPS_ACCESS_LOG = Path("/var/log/cups/access_log")
CUPS_ERROR_LOG = Path("/var/log/cups/error_log")
TEXT = "Renkei capability print test"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<{path}: {exc}>"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _make_pdf(path: Path, serial: str) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=16)
    pdf.cell(text=f"{TEXT} {serial}")
    pdf.output(str(path))


class IppPrinter:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, spool: Path, log: Path):
        self.proc, self.port, self.spool, self.log = proc, port, spool, log

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"


@pytest.fixture
def ipp_printer(
    tmp_path: Path,
    system_services: None,
    need: Callable[[str, str], str],
    free_port: Callable[[], int],
) -> Iterator[IppPrinter]:
    exe = need("ippeveprinter", "cups-ipp-utils")
    spool = tmp_path / "ipp-spool"
    spool.mkdir()
    log = tmp_path / "ippeveprinter.log"
    port = free_port()
    # -c /bin/true: the "print command" finishes at once, so jobs complete in
    #   ~55 ms; without it ippeveprinter answers server-error-busy to the next job.
    # -k: keep the spooled documents so we can inspect them.
    # -n localhost: listen on 127.0.0.1 and ::1 only (default: every interface;
    #   "-n 127.0.0.1" makes ippeveprinter exit, as it cannot bind IPv6 then).
    cmd = [
        exe,
        "-c",
        "/bin/true",
        "-d",
        str(spool),
        "-k",
        "-p",
        str(port),
        "-n",
        "localhost",
        "-f",
        "application/pdf,image/pwg-raster,image/urf",
        f"RenkeiCap{os.getpid()}",
    ]
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path
        )
    try:
        deadline = time.monotonic() + 20
        while not _port_open(port):
            if proc.poll() is not None:
                pytest.fail(
                    f"ippeveprinter exited ({proc.returncode}):\n{log.read_text()}", pytrace=False
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"ippeveprinter not listening on 127.0.0.1:{port}:\n{log.read_text()}",
                    pytrace=False,
                )
            time.sleep(0.1)
        yield IppPrinter(proc, port, spool, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def cups_queue(
    ipp_printer: IppPrinter,
    need: Callable[[str, str], str],
    sh: Callable[..., subprocess.CompletedProcess[str]],
    check: Callable[..., subprocess.CompletedProcess[str]],
) -> Iterator[str]:
    need("lpadmin", "cups-client")
    name = f"renkeicap_{os.getpid()}"
    try:
        # Note: lpadmin -m everywhere can exit 0 even if the printer is not
        # reachable yet, hence the port wait in ipp_printer.
        check(
            [
                "lpadmin",
                "-p",
                name,
                "-E",
                "-v",
                ipp_printer.uri,
                "-m",
                "everywhere",
                "-o",
                "printer-is-shared=false",
            ],
            timeout=60,
        )
        status = check(["lpstat", "-p", name]).stdout
        assert "enabled" in status, status
        yield name
    finally:
        sh(["cancel", "-a", name])
        sh(["lpadmin", "-x", name])
        assert name not in sh(["lpstat", "-p"]).stdout, f"queue {name} not removed"


@pytest.mark.capability
def test_cups_prints_pdf_to_ipp_everywhere_printer(
    tmp_path: Path,
    cups_queue: str,
    ipp_printer: IppPrinter,
    need: Callable[[str, str], str],
    check: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    need("lp", "cups-client")
    need("pdftotext", "poppler-utils")
    serial = f"{os.getpid()}-{time.time_ns()}"
    pdf = tmp_path / "capability.pdf"
    _make_pdf(pdf, serial)
    original_text = check(["pdftotext", "-layout", str(pdf), "-"]).stdout.strip()
    assert serial in original_text

    out = check(["lp", "-d", cups_queue, "-t", f"capability-{serial}", str(pdf)]).stdout
    m = re.search(rf"request id is ({re.escape(cups_queue)}-\d+)", out)
    assert m, f"unexpected lp output: {out!r}"
    job_id = m.group(1)

    deadline = time.monotonic() + 60
    while True:
        completed = check(["lpstat", "-W", "completed", "-o", cups_queue]).stdout
        if re.search(rf"^{re.escape(job_id)}\s", completed, re.M):
            break
        if time.monotonic() > deadline:
            pending = check(["lpstat", "-l", "-o", cups_queue]).stdout
            pytest.fail(
                f"job {job_id} did not complete in 60s.\npending:\n{pending}\n"
                f"cups error_log:\n{_tail(CUPS_ERROR_LOG)}\n"
                f"ippeveprinter log:\n{ipp_printer.log.read_text(errors='replace')}",
                pytrace=False,
            )
        time.sleep(0.2)

    # cupsd's access log records the job submission to this queue.
    access = _tail(CUPS_ACCESS_LOG, 200)
    assert re.search(
        rf"POST /printers/{re.escape(cups_queue)} .*(Print-Job|Send-Document) successful-ok",
        access,
    ), f"no successful job submission for {cups_queue} in {CUPS_ACCESS_LOG}:\n{access}"

    # The printer received a document (ippeveprinter -k keeps it).
    deadline = time.monotonic() + 20
    docs: list[Path] = []
    while time.monotonic() < deadline:
        docs = [
            p
            for p in ipp_printer.spool.iterdir()
            if p.is_file() and p.suffix != ".prn" and p.stat().st_size > 0
        ]
        if docs:
            break
        time.sleep(0.1)
    assert docs, (
        f"no document in {ipp_printer.spool}: {list(ipp_printer.spool.iterdir())}\n"
        f"{ipp_printer.log.read_text(errors='replace')}"
    )

    # CUPS sends application/pdf (first in the printer's -f list), filtered by
    # pdftopdf; the text must survive the trip.
    pdfs = [d for d in docs if d.read_bytes()[:5] == b"%PDF-"]
    assert pdfs, f"spooled documents are not PDF: {docs}"
    for doc in pdfs:
        printed = check(["pdftotext", "-layout", str(doc), "-"]).stdout.strip()
        assert printed == original_text, (printed, original_text)
