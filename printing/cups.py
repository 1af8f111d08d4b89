"""Printing through CUPS (`lp`) or straight to an IPP printer, with calibration.

Jobs go to the CUPS queue chosen per terminal (`lp -d QUEUE`, the document on stdin);
for a driverless printer found on the LAN, `submit_ipp` sends an IPP/1.1 Print-Job
itself (RFC 8010 encoding: version, operation, request id, attribute groups, then the
PDF). Both retry with exponential backoff while the answer is `server-error-busy`
(IPP status 0x0507) — an IPP Everywhere printer says that while it is still processing
the previous job — and raise `PrintJobError` for anything else. The PDF stays available
for download whatever happens, so the clerk can print it elsewhere.

Pre-printed forms: each printer feeds paper with its own small offset. IT staff print
`calibration_sheet()`, measure where the cross marks landed, and store the offset per
queue (`CalibrationStore`); `print_document` renders the document shifted by it.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from printing.canvas import A4, Canvas
from printing.errors import PrintJobError
from printing.fonts import FontRegistry, FontRole
from printing.layout import PrintedDocument

BUSY = 0x0507
MAX_OFFSET_MM = 20.0


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    attempts: int


Runner = Callable[[list[str], bytes], "subprocess.CompletedProcess[bytes]"]


def _run(cmd: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, input=data, capture_output=True, timeout=60, check=False)


def _is_busy(message: str) -> bool:
    return "server-error-busy" in message or re.search(r"\bbusy\b", message, re.I) is not None


def submit_pdf(
    pdf: bytes,
    queue: str,
    *,
    title: str,
    copies: int = 1,
    options: Mapping[str, str] | None = None,
    retries: int = 5,
    backoff_s: float = 0.5,
    runner: Runner = _run,
    sleep: Callable[[float], None] = time.sleep,
) -> JobResult:
    """Queue a PDF with `lp`; returns the CUPS job id (e.g. ``office-42``)."""
    cmd = ["lp", "-d", queue, "-t", title, "-n", str(copies)]
    for key, value in (options or {}).items():
        cmd += ["-o", f"{key}={value}"]
    for attempt in range(1, retries + 2):
        proc = runner(cmd, pdf)
        out = proc.stdout.decode(errors="replace")
        err = proc.stderr.decode(errors="replace")
        if proc.returncode == 0:
            m = re.search(r"request id is (\S+)", out)
            if not m:
                raise PrintJobError(f"lp gave no job id: {out!r}")
            return JobResult(m.group(1), attempt)
        if _is_busy(err) and attempt <= retries:
            sleep(backoff_s * 2 ** (attempt - 1))
            continue
        raise PrintJobError(f"lp -d {queue} failed ({proc.returncode}): {err.strip()}")
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- IPP


def _attr(tag: int, name: str, value: bytes) -> bytes:
    raw = name.encode()
    return struct.pack(">BH", tag, len(raw)) + raw + struct.pack(">H", len(value)) + value


def print_job_request(printer_uri: str, title: str, user: str, request_id: int) -> bytes:
    """An IPP/1.1 Print-Job request header (the document follows it)."""
    return (
        struct.pack(">BBHI", 1, 1, 0x0002, request_id)
        + b"\x01"  # operation-attributes-tag
        + _attr(0x47, "attributes-charset", b"utf-8")
        + _attr(0x48, "attributes-natural-language", b"ja")
        + _attr(0x45, "printer-uri", printer_uri.encode())
        + _attr(0x42, "requesting-user-name", user.encode())
        + _attr(0x42, "job-name", title.encode())
        + _attr(0x49, "document-format", b"application/pdf")
        + b"\x03"  # end-of-attributes-tag
    )


def parse_response(data: bytes) -> tuple[int, dict[str, bytes]]:
    """(status code, first value of each attribute) of an IPP response."""
    if len(data) < 9:
        raise PrintJobError("short IPP response")
    status = struct.unpack(">H", data[2:4])[0]
    attrs: dict[str, bytes] = {}
    pos = 8
    name = ""
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag == 0x03:
            break
        if tag < 0x10:  # a group delimiter
            continue
        (name_len,) = struct.unpack(">H", data[pos : pos + 2])
        pos += 2
        if name_len:
            name = data[pos : pos + name_len].decode(errors="replace")
        pos += name_len
        (value_len,) = struct.unpack(">H", data[pos : pos + 2])
        pos += 2
        attrs.setdefault(name, data[pos : pos + value_len])
        pos += value_len
    return status, attrs


def _http_url(printer_uri: str) -> str:
    scheme, rest = printer_uri.split("://", 1)
    host, _, path = rest.partition("/")
    if ":" not in host.split("]")[-1]:
        host += ":631"
    return f"{'https' if scheme == 'ipps' else 'http'}://{host}/{path}"


def submit_ipp(
    pdf: bytes,
    printer_uri: str,
    *,
    title: str,
    user: str = "renkei",
    retries: int = 5,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 30.0,
) -> JobResult:
    """Print-Job straight to an IPP printer (ipp:// or ipps:// URI)."""
    url = _http_url(printer_uri)
    for attempt in range(1, retries + 2):
        body = print_job_request(printer_uri, title, user, attempt) + pdf
        try:
            response = httpx.post(
                url, content=body, headers={"Content-Type": "application/ipp"}, timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            raise PrintJobError(f"IPP printer {printer_uri} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise PrintJobError(f"IPP printer {printer_uri}: HTTP {response.status_code}")
        status, attrs = parse_response(response.content)
        if status < 0x0100:
            job_id = attrs.get("job-id", b"")
            return JobResult(str(int.from_bytes(job_id, "big")) if job_id else "?", attempt)
        if status == BUSY and attempt <= retries:
            sleep(backoff_s * 2 ** (attempt - 1))
            continue
        message = attrs.get("status-message", b"").decode(errors="replace")
        raise PrintJobError(f"IPP printer {printer_uri}: status 0x{status:04x} {message}")
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class Calibration:
    """Where a printer puts content relative to the page: +dx right, +dy down (mm)."""

    dx_mm: float = 0.0
    dy_mm: float = 0.0

    def correction(self) -> tuple[float, float]:
        return (-self.dx_mm, -self.dy_mm)


class CalibrationStore:
    """Per-queue offsets in a small JSON file ({queue: {"dx_mm": .., "dy_mm": ..}})."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, float]]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not a calibration table")
        return data

    def get(self, queue: str) -> Calibration:
        entry = self._load().get(queue)
        return Calibration(**entry) if entry else Calibration()

    def set(self, queue: str, calibration: Calibration) -> None:
        if max(abs(calibration.dx_mm), abs(calibration.dy_mm)) > MAX_OFFSET_MM:
            raise ValueError(f"offset over {MAX_OFFSET_MM} mm: measure again")
        data = self._load()
        data[queue] = {"dx_mm": calibration.dx_mm, "dy_mm": calibration.dy_mm}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True))
        tmp.replace(self.path)


CALIBRATION_MARKS = ((20.0, 20.0), (190.0, 20.0), (105.0, 148.5), (20.0, 277.0), (190.0, 277.0))


def calibration_sheet(town_code: str, *, registry: FontRegistry | None = None) -> bytes:
    """A4 page with cross marks at known positions (`CALIBRATION_MARKS`, mm from the top
    left); measure where they print to get the printer's offset."""
    canvas = Canvas(town_code, size=A4, registry=registry)
    page = canvas.add_page()
    page.text(105, 40, "プリンタ位置調整シート", size=16, role=FontRole.GOTHIC, align="C")
    page.text(
        105, 50, "十字の中心が用紙の端から何mmの位置に印刷されたかを測り、", size=10, align="C"
    )
    page.text(
        105,
        56,
        "設計値（左上 20mm・20mm）との差を調整値として登録してください。",
        size=10,
        align="C",
    )
    for x, y in CALIBRATION_MARKS:
        page.line(x - 8, y, x + 8, y, width=0.2)
        page.line(x, y - 8, x, y + 8, width=0.2)
        page.text(x + 1.5, y - 1.5, f"{x:g},{y:g}", size=6)
    return canvas.render(title="calibration")


def print_document(
    doc: PrintedDocument,
    queue: str,
    *,
    calibration: Calibration | None = None,
    copies: int = 1,
    retries: int = 5,
    backoff_s: float = 0.5,
    runner: Runner = _run,
) -> JobResult:
    """Send an issued document to a CUPS queue at actual size, on the paper it was laid
    out for (a card prints on A4, to be cut), shifted by the queue's calibration."""
    pdf = doc.pdf or doc.render()
    if calibration is not None and calibration != Calibration():
        pdf = doc.render(offset_mm=calibration.correction())
    return submit_pdf(
        pdf,
        queue,
        title=str(doc.number),
        copies=copies,
        options={"media": media_for(doc.canvas.size), "print-scaling": "none"},
        retries=retries,
        backoff_s=backoff_s,
        runner=runner,
    )


def media_for(size: tuple[float, float]) -> str:
    """PWG media name for a page size (CUPS otherwise scales to the printer's default,
    often Letter, which changes a certificate's layout)."""
    short, long = sorted(size)
    if (short, long) == (148.0, 210.0):
        return "iso_a5_148x210mm"
    return "iso_a4_210x297mm"
