"""The operator's intake queue lists each application once. A box hands every application
taken at intake to the hub at the next contact (a one-application export, edge
emergency_export.intake_handoff) and the end of the emergency sends a sealed export that
carries every application again; the queue then shows each application under the end's
export — its row there, and a link to it from the hand-over — matched by the
application's identity (town, box, 受付番号), not by what the row displays.

The exports are built by the box's own archive code from applications taken with the
box's IntakeBook, sealed with the box's key and posted to a real hub server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey
from servers import serve
from test_hub_screens import PASSWORD, _log_in
from test_hub_screens_enrolled import _enrol

from cloud.app import create_app, hub_db_path
from cloud.custody import Custody
from cloud.enrolment import Registry
from cloud.importer import import_export
from cloud.intake_queue import place_applications
from cloud.operators import add_operator
from edge.emergency_export import handoff_archive, town_archive
from edge.exports import seal_export
from edge.intake import Application, IntakeBook, IntakeKind
from shared.crypto import FederationRoot
from shared.issuance.numbering import box_code_for
from shared.storage import MemoryStorage, SqliteStorage

TOWN = "15307"
PASSPHRASE = "operator passphrase for the intake queue"


@pytest.fixture
def hub(
    tmp_path: Path, small_export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Custody, SigningKey]]:
    data = tmp_path / "hub"
    storage = SqliteStorage(hub_db_path(data))
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    storage.close()
    custody.save(data, PASSPHRASE)
    add_operator(data, "ops.sato", PASSWORD)
    registry = Registry(hub_db_path(data))
    box_key = _enrol(registry, FederationRoot.generate(), "seiro-1", TOWN)
    registry.close()
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)  # the custody opens
    with serve(create_app(data)) as url:
        yield url, custody, box_key


def _take(book: IntakeBook, name: str, at: datetime) -> Application:
    return book.take(
        kind=IntakeKind.CERTIFICATE, at=at, document="住民票の写し", subject_id="",
        subject_name=name, applicant_name=name, contact="025-000-0000",
        send_to="新潟県北蒲原郡聖籠町 避難所", details="", reason="基幹系に接続できないため",
        clerk_id="clerk.1", terminal="T1",
    )  # fmt: skip


def _post(client: httpx.Client, town: str, name: str, blob: bytes) -> None:
    response = client.post(f"/api/exports/{town}/{name}", content=blob)
    assert response.status_code == 200, response.text


def _sections(page: str) -> dict[str, str]:
    """Each export's part of the page, by the export's name."""
    parts = re.split(r"(?=<h2)", page.split("</h1>", 1)[1])
    found = {}
    for part in parts:
        named = re.search(r"<code>(renkei-[^<]+)</code>", part)
        if named:
            found[named.group(1)] = part
    return found


def test_an_application_is_listed_once_under_the_end_export(
    hub: tuple[str, Custody, SigningKey],
) -> None:
    url, custody, box_key = hub
    ring = custody.ring(TOWN)
    box = box_code_for(bytes(box_key.verify_key))
    registers = MemoryStorage()
    book = IntakeBook(registers, TOWN, box)
    # Same minute, same kind, same state: identical rows but for the number — two
    # applications, not one.
    at = datetime(2026, 11, 27, 1, 5, tzinfo=UTC)
    first, second = _take(book, "連携 一郎", at), _take(book, "連携 二郎", at)
    with httpx.Client(base_url=url, timeout=60) as client:
        for application in (first, second):  # handed over at the next contact
            name, data = handoff_archive(TOWN, box, application)
            _post(client, TOWN, name, seal_export(data, "emergency", name, ring.public, box,
                                                  box_key))  # fmt: skip
        end, data, manifest = town_archive(TOWN, box, "supervisor.1", registers, {"case": "1"})
        assert manifest["files"]["intake.json"]["rows"] == 2
        _post(client, TOWN, end, seal_export(data, "emergency", end, ring.public, box, box_key))
        assert _log_in(client).status_code == 303
        page = client.get("/operator/intake").text
    for application in (first, second):
        assert page.count(f"<td>{application.number}</td>") == 1, page
    sections = _sections(page)
    assert set(sections) == {end, f"renkei-intake-{first.number}", f"renkei-intake-{second.number}"}
    assert f"<td>{first.number}</td>" in sections[end]
    assert f"<td>{second.number}</td>" in sections[end]
    for application in (first, second):
        handoff = sections[f"renkei-intake-{application.number}"]
        assert f"<td>{application.number}</td>" not in handoff
        # the hand-over points to the export that now carries the application
        assert application.number in handoff and f'href="#{_anchor(end)}"' in handoff, handoff
    assert f'id="{_anchor(end)}"' in sections[end]
    assert "連携 一郎" not in page  # numbers, dates, kinds and states only


def _anchor(name: str) -> str:
    return f"export-{TOWN}-{name}"


def _entry(name: str, box_key: str, numbers: list[str], *, handoff: bool, at: float) -> dict:
    rows = [{"number": n, "received_at": "2026-11-27T10:05:00+09:00", "kind": "死亡届",
             "state": "未処理"} for n in numbers]  # fmt: skip
    return {"town": TOWN, "name": name, "received_at": at, "handoff": handoff,
            "box_key": box_key, "applications": rows}  # fmt: skip


def _listed(entry: dict) -> list[str]:
    return [row["number"] for row in entry["applications"]]


def test_placement_follows_identity_and_prefers_the_first_end_export() -> None:
    number = "U-15307-BAAAAAAAA-000001"
    waiting = _entry("renkei-intake-x", "aa", ["U-15307-BAAAAAAAA-000009"], handoff=True, at=1)
    handoff = _entry("renkei-intake-y", "aa", [number], handoff=True, at=2)
    first_end = _entry("renkei-export-1", "aa", [number, number], handoff=False, at=3)
    second_end = _entry("renkei-export-2", "aa", [number], handoff=False, at=4)
    other_box = _entry("renkei-export-3", "bb", [number], handoff=False, at=5)
    unopened = {**_entry("renkei-export-4", "", [], handoff=False, at=6), "applications": None}
    exports = [second_end, other_box, handoff, first_end, waiting, unopened]
    place_applications(exports)
    # not in any end's export yet: it stays with its hand-over
    assert _listed(waiting) == ["U-15307-BAAAAAAAA-000009"] and not waiting["listed_elsewhere"]
    assert _listed(first_end) == [number]  # the first end's export received, once
    assert _listed(handoff) == [] and _listed(second_end) == []
    for entry in (handoff, second_end):
        (pointer,) = entry["listed_elsewhere"]
        assert pointer["home"] == "renkei-export-1" and pointer["home_is_end"]
        assert pointer["anchor"] == _anchor("renkei-export-1")
    # the same 受付番号 from another box's key is another application
    assert _listed(other_box) == [number]
    assert unopened["applications"] is None and unopened["listed_elsewhere"] == []
