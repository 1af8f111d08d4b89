"""The operator's screens with enrolled boxes and the custody unsealed (the operator's
passphrase handed to the hub process): each box's health from its last sync, and the
intake in an enrolled box's emergency export counted and listed without names."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from servers import serve
from test_hub_screens import PASSWORD, _export, _log_in

from cloud.app import create_app, hub_db_path
from cloud.custody import Custody
from cloud.enrolment import BoxRow, Registry, TokenRow, token_hash
from cloud.importer import import_export
from cloud.operators import add_operator
from shared.crypto import FederationRoot, issue_box_certificate
from shared.issuance.numbering import box_code_for
from shared.storage import SqliteStorage

CUSTODY_PASSPHRASE = "operator passphrase for the test custody"


def _enrol(registry: Registry, root: FederationRoot, name: str, town: str) -> SigningKey:
    key = SigningKey.generate()
    now = datetime.now(UTC)
    cert = issue_box_certificate(
        root,
        name,
        town=town,
        sealing_key=PrivateKey.generate().public_key,
        verify_key=key.verify_key,
        issued_at=now,
        expires_at=now + timedelta(days=365),
    )
    token = TokenRow(
        token_hash(name), name, town, time.time(), time.time() + 3600, None, None, None, None
    )
    registry.add_token(token)
    row = BoxRow(
        name,
        town,
        bytes(key.verify_key).hex(),
        f"peer-{name}",
        json.dumps(cert.to_json()),
        "",
        time.time(),
        None,
        None,
        None,
    )
    assert registry.consume_and_enrol(token, row, time.time())
    return key


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path
) -> Iterator[tuple[str, Custody, SigningKey]]:
    data = tmp_path_factory.mktemp("hub-enrolled")
    storage = SqliteStorage(hub_db_path(data))
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    storage.close()
    custody.save(data, CUSTODY_PASSPHRASE)
    add_operator(data, "ops.sato", PASSWORD)
    registry = Registry(hub_db_path(data))
    root = FederationRoot.generate()
    box_key = _enrol(registry, root, "B01", "15307")
    _enrol(registry, root, "box-15405", "15405")
    _enrol(registry, root, "box-15581", "15581")
    registry.touch("B01", time.time())
    registry.touch("box-15581", time.time() - 3 * 3600)
    registry.close()
    before = os.environ.get("RENKEI_HUB_PASSPHRASE")
    os.environ["RENKEI_HUB_PASSPHRASE"] = CUSTODY_PASSPHRASE
    try:
        with serve(create_app(data)) as url:
            yield url, custody, box_key
    finally:
        if before is None:
            os.environ.pop("RENKEI_HUB_PASSPHRASE", None)
        else:
            os.environ["RENKEI_HUB_PASSPHRASE"] = before


def test_box_health_and_an_enrolled_boxs_intake(hub: tuple[str, Custody, SigningKey]) -> None:
    url, custody, box_key = hub
    sealed = _export("15307", box_key, custody.ring("15307"), "renkei-export-15307-2")
    forged = _export("15307", SigningKey.generate(), custody.ring("15307"), "renkei-export-15307-3")
    # What a real box's worker writes: the box named by its 発行番号 code, not its name.
    by_code = _export(
        "15307",
        box_key,
        custody.ring("15307"),
        "renkei-export-15307-4",
        box_code_for(bytes(box_key.verify_key)),
    )
    exports = (
        ("renkei-export-15307-2", sealed),
        ("renkei-export-15307-3", forged),
        ("renkei-export-15307-4", by_code),
    )
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, blob in exports:
            assert client.post(f"/api/exports/15307/{name}", content=blob).status_code == 200
        assert _log_in(client).status_code == 303
        health = client.get("/operator").text
        intake = client.get("/operator/intake").text
    rows = {
        row.split("<td>")[1].split("</td>")[0]: row
        for row in health.replace("</tr>", "</tr>\n").splitlines()
        if "<td>" in row
    }
    assert "box-15405" in rows, health
    assert "正常" in rows["B01"] and "未同期" in rows["box-15405"]
    assert "応答なし" in rows["box-15581"]
    assert "U-15307-B01-000001" in intake and "証明書の郵送" in intake
    assert "秘密 花子" not in intake  # numbers, dates, kinds and states only
    # only the export signed by an unknown key is not opened; the one naming its box by
    # code is matched to the enrolled box through the key
    assert intake.count("検証できません") == 1, intake
