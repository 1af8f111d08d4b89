"""The export that ends an emergency: what the counter did while the core system was out
of reach, for the town's core system to take back (BRIEF §1: changes were not processed;
applications were taken and results mailed later).

Made inside the town's worker (the registers and the intake are sealed to the town) as a
ZIP archive, then sealed to the town like every file that leaves a box (edge/exports.py:
document ``export␟emergency␟NAME``, writer ``export:BOX``, the box's key): a lost USB
stick gives nothing away, and `renkei export open FILE --data BOX_DATA --town CODE
--login ID` opens it with one of the town's clerks' usual login.

Layout of the archive (UTF-8 everywhere; CSV with a header row, CRLF line ends):

    manifest.json             {"format": "renkei-emergency-export", "version": 1,
                               "town", "box", "host_town", "created_at" (ISO 8601, JST),
                               "created_by", "case" (1|2|3|""), "activations": [ids],
                               "files": {name: {"sha256", "rows"}},
                               "not_included": {name: why}}
    issuance-register.json    every 交付 entry on this box (shared.issuance.registers,
                              JSON as the register stores it), voided ones flagged
    issuance-register.csv     the same, one line per copy: 発行番号, 交付日時, 証明書,
                              対象者, 請求者区分, 手数料, 減免, 職員, 端末, 無効
    daily-report.json         日計表 per day (shared.issuance.registers.daily_report)
    intake.json, intake.csv   申請受付 (edge/intake.py: the applications taken while the
                              data was stale or the hub unreachable; the CSV is
                              `IntakeBook.export_csv`, UTF-8 with BOM)
    provisional-changes.json, provisional-changes.csv
                              a supervisor's provisional emergency changes (暫定異動,
                              edge/provisional.py), for the core system to process
    checklist.json            the emergency checklist's ticks (edge/procedure.py)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from edge.boxkey import box_signing_key
from edge.exports import seal_export
from edge.intake import Application, IntakeBook
from edge.provisional import ProvisionalBook
from shared.issuance.codec import encode
from shared.issuance.registers import IssuanceRegister, daily_report
from shared.storage import Storage

if TYPE_CHECKING:
    from edge.counter import ClerkSession
    from edge.worker import TownWorker

JST = timezone(timedelta(hours=9), "JST")
FORMAT = "renkei-emergency-export"
CSV_HEADER = [
    "発行番号",
    "交付日時",
    "証明書",
    "対象者",
    "請求者区分",
    "手数料",
    "減免",
    "職員",
    "端末",
    "無効",
]


def _csv(rows: Iterable[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode()


def archive(
    worker: TownWorker, clerk: ClerkSession, register_storage: Storage, form: dict[str, Any]
) -> tuple[str, bytes, dict[str, Any]]:
    """(name, ZIP bytes, manifest) of the export."""
    return town_archive(worker.town, worker.box_id, clerk.login_id, register_storage, form)


def town_archive(
    town: str, box_id: str, created_by: str, register_storage: Storage, form: dict[str, Any]
) -> tuple[str, bytes, dict[str, Any]]:
    """`archive` for a town's registers on box `box_id`, made by clerk `created_by` (the
    worker's part is only naming them, so the hub's tests build real exports too)."""
    now = datetime.now(JST)
    register = IssuanceRegister(register_storage, town)
    entries = register.entries()
    voided = register.voided()
    days = sorted({e.day for e in entries})
    valid = [e for e in entries if e.number not in voided]
    files: dict[str, bytes] = {
        "issuance-register.json": _json(
            [{**encode(e), "voided": e.number in voided} for e in entries]
        ),
        "issuance-register.csv": _csv(
            [
                e.number,
                e.issued_at.astimezone(JST).isoformat(),
                e.document.value,
                " ".join(e.subject_ids),
                e.requester.value,
                e.fee_payable,
                e.reduction.value,
                e.clerk_id,
                e.terminal,
                "無効" if e.number in voided else "",
            ]
            for e in entries
        ),
        "daily-report.json": _json(
            {d.isoformat(): [encode(line) for line in daily_report(valid, d)] for d in days}
        ),
    }
    intake = IntakeBook(register_storage, town, box_id)
    applications = intake.applications()
    files["intake.json"] = _json([a.to_json() for a in applications])
    files["intake.csv"] = intake.export_csv()
    provisional = ProvisionalBook(register_storage, town, box_id)
    changes = provisional.changes()
    files["provisional-changes.json"] = _json([c.to_json() for c in changes])
    files["provisional-changes.csv"] = provisional.export_csv()
    not_included: dict[str, str] = {}
    files["checklist.json"] = _json(form.get("checklist", {}))
    counts = {
        "issuance-register.json": len(entries),
        "issuance-register.csv": len(entries),
        "daily-report.json": len(days),
        "intake.json": len(applications),
        "intake.csv": len(applications),
        "provisional-changes.json": len(changes),
        "provisional-changes.csv": len(changes),
    }
    manifest = {
        "format": FORMAT,
        "version": 1,
        "town": town,
        "box": box_id,
        "host_town": str(form.get("host_town", "")),
        "created_at": now.isoformat(),
        "created_by": created_by,
        "case": str(form.get("case", "")),
        "activations": [str(a) for a in form.get("activations", [])],
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "rows": counts.get(name)}
            for name, data in sorted(files.items())
        },
        "not_included": not_included,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", _json(manifest))
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    name = f"renkei-export-{town}-{now:%Y%m%d-%H%M%S}"
    return name, buffer.getvalue(), manifest


def build(
    worker: TownWorker, clerk: ClerkSession, register_storage: Storage, form: dict[str, Any]
) -> dict[str, Any]:
    """The sealed export, as the worker answers the front: {name, sealed (hex), manifest}."""
    name, data, manifest = archive(worker, clerk, register_storage, form)
    return {"name": name, "sealed": _sealed(worker, name, data).hex(), "manifest": manifest}


def _sealed(worker: TownWorker, name: str, data: bytes) -> bytes:
    """An export sealed to the town and signed with the box's key."""
    assert worker.keyring is not None
    return seal_export(
        data,
        "emergency",
        name,
        worker.keyring.public,
        worker.box_id,
        box_signing_key(worker.data_dir),
    )


def intake_handoff(worker: TownWorker, register_storage: Storage, number: str) -> dict[str, Any]:
    """One application taken at intake, as a small sealed export of its own: kept on
    the box and handed to the hub at the first pull that reaches it (`push_exports`), so
    the hub's intake queue learns of it when the hub is reachable again — without
    waiting for the end of the emergency. Same format and seal as the end's export (the
    hub's `open_intake` reads both); the end's export still carries every application,
    and the hub lists each application once (cloud/intake_queue.py)."""
    found = [a for a in IntakeBook(register_storage, worker.town, worker.box_id).applications()
             if a.number == number]  # fmt: skip
    if not found:
        raise ValueError("no such application")
    name, data = handoff_archive(worker.town, worker.box_id, found[0])
    return {"name": name, "sealed": _sealed(worker, name, data).hex()}


def handoff_archive(town: str, box_id: str, application: Application) -> tuple[str, bytes]:
    """(name, ZIP bytes) of one application's hand-over; the manifest says
    "handoff": "intake" so the hub can tell it from the end's export."""
    now = datetime.now(JST)
    intake = _json([application.to_json()])
    manifest = {
        "format": FORMAT,
        "version": 1,
        "town": town,
        "box": box_id,
        "handoff": "intake",
        "created_at": now.isoformat(),
        "files": {"intake.json": {"sha256": hashlib.sha256(intake).hexdigest(), "rows": 1}},
        "not_included": {},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", _json(manifest))
        zf.writestr("intake.json", intake)
    return f"renkei-intake-{application.number}", buffer.getvalue()


def read_archive(data: bytes, town: str) -> zipfile.ZipFile:
    """The opened export (after `edge.exports.open_export`), every file checked against
    the manifest. Raises ValueError."""
    archive_file = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive_file.read("manifest.json"))
    if manifest.get("format") != FORMAT or manifest.get("town") != town:
        raise ValueError("not an emergency export of this town")
    for name, meta in manifest["files"].items():
        if hashlib.sha256(archive_file.read(name)).hexdigest() != meta["sha256"]:
            raise ValueError(f"{name} does not match the manifest")
    return archive_file
