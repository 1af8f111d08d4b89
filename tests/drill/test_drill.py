"""`renkei drill` in its short profile against real processes (hub, three boxes, fault
proxies, IPP printers): the report's structure, every row's verdict resting on evidence,
every row ○ for the town with each document cited — and the verdict rules and the
`--against` guard on their own."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from drill_run import REPO, rows_of, run_drill

from renkei import netns
from renkei.drill.against import NotDrillMode, require_drill_document
from renkei.drill.evidence import FAIL, PASS, UNVERIFIED, Check, RowResult, unverified
from renkei.drill.rows import ROWS
from renkei.drill.scenario import UNIQUE_NUMBER

TOWN = "15307"  # the short profile (seed 1) has Moji_Joho IVS names here
ISSUANCE = {12: "juminhyo", 13: "tax", 14: "nhi", 15: "list",
             21: "juminhyo", 22: "tax", 23: "nhi", 24: "list",
             30: "juminhyo", 31: "tax", 32: "nhi", 33: "list"}  # fmt: skip


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("drill")
    code, report, stderr = run_drill(tmp, "--towns", TOWN)
    assert not report["error"], stderr[-3000:]
    return code, report, tmp


def test_the_report_has_every_row_for_the_town_with_evidence_behind_each_verdict(
    drill: tuple[int, dict[str, Any], Path],
) -> None:
    code, report, _ = drill
    assert report["kind"] == "renkei-drill" and report["mode"] == "local"
    rows = rows_of(report, TOWN)
    assert sorted(rows) == [r.number for r in ROWS] == list(range(1, 35))
    for row in rows.values():
        assert row["result"] in (PASS, FAIL, UNVERIFIED)
        assert row["checks"], row["row"]
        if row["result"] == PASS:  # never ○ on faith
            assert all(c["evidence"] and c["result"] == PASS for c in row["checks"]), row
        if any(not c["evidence"] for c in row["checks"]):
            assert row["result"] != PASS, row
    summary = report["towns"][TOWN]["summary"]
    assert summary[PASS] + summary[FAIL] + summary[UNVERIFIED] == 34
    assert code == (1 if summary[FAIL] else 0)


def test_every_row_passes_and_each_document_cites_its_number_size_and_digest(
    drill: tuple[int, dict[str, Any], Path],
) -> None:
    _, report, tmp = drill
    rows = rows_of(report, TOWN)
    # Every check, 「発行番号の一意性」 included: each box numbers under its own box code
    # (shared.issuance.numbering.box_code_for), so the town's documents issued at its own
    # box and at the partner boxes never share a 発行番号.
    failed = {n: [c for c in r["checks"] if c["result"] != PASS] for n, r in rows.items()}
    assert not any(failed.values()), failed
    uniqueness = [c for n in ISSUANCE for c in rows[n]["checks"] if c["name"] == UNIQUE_NUMBER]
    assert len(uniqueness) == len(ISSUANCE), uniqueness  # checked on every issuance row
    for number, document in ISSUANCE.items():
        documents = [e for c in rows[number]["checks"] for e in c["evidence"]
                     if e["kind"] == "document"]  # fmt: skip
        assert documents and documents[0]["data"]["number"], rows[number]
        assert len(documents[0]["data"]["sha256"]) == 64 and documents[0]["data"]["size"] > 1000
        assert rows[number]["seconds"] is not None and rows[number]["seed_seconds"] > 0
        number_issued = documents[0]["data"]["number"]
        saved = list((tmp / "run" / "documents").glob(f"*-{document}-{number_issued}*.pdf"))
        assert saved and saved[0].read_bytes().startswith(b"%PDF-"), document
    refusals = [e for c in rows[27]["checks"] for e in c["evidence"] if e["kind"] == "refusal"]
    assert len(refusals) == 4 and all(e["data"]["status"] in (401, 403) for e in refusals)


def test_each_case_has_a_recovery_time_data_loss_and_counted_human_steps(
    drill: tuple[int, dict[str, Any], Path],
) -> None:
    _, report, tmp = drill
    cases = {c["situation"]: c for c in report["cases"] if c["town"] == TOWN}
    assert set(cases) == {"case1", "case2", "case3"}
    for case in cases.values():
        assert case["recovery_s"] is not None and case["recovery_s"] > 0
        assert case["edits_made"] > 0 and case["edits_visible"] > 0
        assert case["data_loss_s"] is not None and case["data_loss_s"] >= 0
        assert case["hub_as_of"] and case["shown_as_of"]
    assert cases["case1"]["host"] == TOWN and cases["case2"]["host"] != TOWN
    assert cases["case3"]["host"] not in (TOWN, cases["case2"]["host"])
    # case 2 and 3: the representative's code, the host supervisor's password and
    # approval, the visitor's password
    assert cases["case2"]["human_steps"] == cases["case3"]["human_steps"] == 4
    kinds = report["human_steps"]["by_kind"]
    assert kinds["activation_code"] == kinds["supervisor_approval"] == 2
    page = (tmp / "drill.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page and "根拠" in page


def test_the_federation_ran_on_the_namespace_lan_it_made_and_left_nothing_of_it(
    drill: tuple[int, dict[str, Any], Path],
) -> None:
    """By default (auto) the drill runs in network namespaces wherever one can be made
    here (CI runs as root): the hub and each town hall on their own, reached at their LAN
    addresses — the set-up row's health and identity requests, the printing at the host
    town — and every namespace and veth gone afterwards."""
    _, report, _ = drill
    net = report["network"]
    assert net["requested"] == "auto"
    if netns.unavailable():
        assert net["mode"] == "loopback" and net["note"], net
        return
    assert net["mode"] == "netns", net
    lan = ipaddress.ip_network(f"{net['drill']}/24", strict=False)
    assert lan.is_private and not ipaddress.ip_address(net["drill"]).is_loopback
    for code, url in net["boxes"].items():
        address = urlsplit(url).hostname
        assert address == net["hosts"][code]["address"] and ipaddress.ip_address(address) in lan
    assert urlsplit(net["hub"]).hostname == net["hosts"]["hub"]["address"]
    rows = rows_of(report, TOWN)
    seen = [e["text"] for c in rows[3]["checks"] for e in c["evidence"]]
    assert any(t.startswith(f"GET {net['boxes'][TOWN]}/api/health → 200") for t in seen), seen
    assert any("/api/identity → 200" in t for t in seen), seen
    host = report_case_host(report, "case2")
    printed = [e["text"] for c in rows[17]["checks"] for e in c["evidence"]]
    printer = f"ipp://{net['hosts'][host]['address']}:"
    assert any(printer in t and "受け取りました" in t for t in printed), printed
    # the town's portable node: synced at home, plugged into the case 2 host's namespace,
    # its edit made on the way now held by the host box
    (node,) = net["portable"]
    assert node["node"] == f"laptop-{TOWN}" and node["home_entries"] > 0, node
    assert node["carried_to"] == host and node["ok"] and node["pushed"] >= 1, node
    assert node["namespace"] in net["namespaces"] and node["cable"], node
    assert net["left"] == []
    assert not set(net["namespaces"]) & set(netns.namespaces())
    assert not set(net["links"]) & set(netns.links())


def report_case_host(report: dict[str, Any], situation: str) -> str:
    return next(c["host"] for c in report["cases"]
                if c["town"] == TOWN and c["situation"] == situation)  # fmt: skip


def test_the_drill_command_has_help() -> None:
    done = subprocess.run([sys.executable, "-m", "renkei", "drill", "--help"],
                          capture_output=True, text=True, cwd=REPO, check=True)  # fmt: skip
    assert "--against" in done.stdout and "--json" in done.stdout and "--network" in done.stdout


# ---------------------------------------------------------------------------- verdicts


def test_a_check_without_evidence_is_never_passed() -> None:
    check = Check("x", passed=True)
    assert check.verdict == UNVERIFIED
    check.see("request", "GET / → 200")
    assert check.verdict == PASS
    check.ok(False, "broken")
    assert check.verdict == FAIL
    check.ok(True)  # a later success never clears a failure
    assert check.verdict == FAIL


def test_a_row_is_passed_only_when_every_check_is() -> None:
    row = RowResult(16, TOWN)
    assert row.verdict == UNVERIFIED
    good = Check("a")
    good.see("measurement", "1 s")
    good.ok(True)
    row.add(good)
    assert row.verdict == PASS
    row.add(unverified("b", "not built"))
    assert row.verdict == UNVERIFIED
    bad = Check("c")
    bad.see("refusal", "403")
    bad.ok(False)
    row.add(bad)
    assert row.verdict == FAIL


# ---------------------------------------------------------------------------- --against


def test_against_refuses_a_box_that_is_not_in_drill_mode(tmp_path: Path) -> None:
    """A real box (no drill mode) is refused before any login is attempted."""
    from servers import serve

    from edge.app import BoxConfig, create_app

    config = BoxConfig("http://127.0.0.1:9", "15307", tmp_path / "box")
    credentials = tmp_path / "credentials.json"
    clerk = {"town": "15307", "login_id": "x", "password": "y"}
    subject = {"resident_id": "r", "kana": "ア", "name": "n"}
    credentials.write_text(json.dumps({"clerks": [clerk], "subjects": {"15307": subject}}))
    with serve(create_app(config)) as url:
        done = subprocess.run(
            [sys.executable, "-m", "renkei", "drill", "--against", url,
             "--credentials", str(credentials), "--json"],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "訓練モードではありません" in done.stderr and done.stdout == ""


def test_a_live_document_stops_a_drill() -> None:
    require_drill_document("D20261127-15307-B01-T01-P01-000001", "見本 これは訓練用の見本です")
    with pytest.raises(NotDrillMode):
        require_drill_document("20261127-15307-B01-T01-P01-000001", "見本")
    with pytest.raises(NotDrillMode):
        require_drill_document("D20261127-15307-B01-T01-P01-000001", "住民票の写し")


def test_the_hub_pins_the_drill_root_enrols_every_box_and_takes_their_anchors(
    drill: tuple[int, dict[str, Any], Path],
) -> None:
    """The drill's boxes (and the portable node) are enrolled at the hub with a one-time
    token, as an installation does: the hub has the drill's root pinned and each box in
    its registry, refuses none of their audit anchors, and holds an anchored head of the
    audit chain of each box that issued while the hub was up. Row 3 cites the hub's registry."""
    from nacl.signing import SigningKey

    from cloud.anchors import enrolled_box_key
    from cloud.enrolment import Registry
    from edge.boxkey import box_audit_writer
    from edge.enrolment import enrolled_box_id
    from shared.audit import AnchorStore
    from shared.storage import SqliteStorage

    _, report, tmp = drill
    run = tmp / "run"
    logs = sorted((run / "logs").glob("*.log"))
    assert run / "logs" / "hub.log" in logs
    for log in logs:
        text = log.read_text(errors="replace")  # the hub's words, and a box's
        assert "anchors refused" not in text and "refused the audit anchors" not in text, log
    boxes = {f"box-{code}": run / "boxes" / code / "data" for code in ("15307", "15405", "15581")}
    if report["network"]["mode"] == "netns":
        boxes[f"laptop-{TOWN}"] = run / "laptops" / TOWN / "data"
    registry = Registry(run / "hub" / "hub.db")
    storage = SqliteStorage(run / "hub" / "hub.db")
    try:
        pinned = json.loads((boxes[f"box-{TOWN}"] / "discovery.json").read_text())
        assert registry.setting("root") == pinned["federation_root"]  # the drill's root
        for name, data in boxes.items():
            assert enrolled_box_id(data) == name
            key = SigningKey((data / "box.key").read_bytes()).verify_key
            enrolled_box_key(registry, name, key, time.time())  # raises if not
        # the boxes that issued while the hub was up (the town's own, the case 2 host;
        # the case 3 host issues with the hub down) have their chain for the town anchored
        for code in (TOWN, report_case_host(report, "case2")):
            writer = box_audit_writer(boxes[f"box-{code}"], f"box-{code}").writer_id
            assert AnchorStore(storage, TOWN).get(writer) is not None, code
    finally:
        storage.close()
        registry.close()
    seen = [e["text"] for c in rows_of(report, TOWN)[3]["checks"] for e in c["evidence"]]
    assert any(t.startswith(f"ハブの登録簿: box-{TOWN} はこの鍵で登録済み") for t in seen), seen
