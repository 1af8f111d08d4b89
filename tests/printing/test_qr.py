"""The signed QR: payload round trip, any one-byte change rejected (hypothesis), the code
on a rendered page decodes with zbarimg, and `renkei verify` accepts/rejects it."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pdf_inspect import IssueFactory

from printing.certificates.juminhyo import JuminhyoItems, render_juminhyo
from printing.errors import PayloadError
from printing.fonts import FontRegistry
from printing.layout import PrintedDocument, Signer
from printing.qr import (
    PREFIX,
    DocumentKind,
    PayloadFields,
    b45decode,
    b45encode,
    decode_payload,
    sign_payload,
    verify_payload,
)
from renkei.cli import main
from shared.crypto import ClerkKeys, TownKeys, TownPublic, issue_clerk_certificate
from shared.model import Role, TownExport

FIELDS = PayloadFields(
    kind=DocumentKind.JUMINHYO,
    town_code="15307",
    issue_number="20261127-15307-B01-T02-P01-000001",
    issued_at=datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
    data_as_of=datetime(2026, 11, 26, 17, 0, tzinfo=UTC),
    data_version=b"\x00\x01\x02\x03",
    pages=2,
    subject="辻\U000e0102　太郎 ほか1名",
    content_digest=bytes(range(32)),
    audit_head=bytes(range(32, 64)),
)


def lookup_for(keys: dict[str, TownKeys]):  # type: ignore[no-untyped-def]
    def lookup(town: str, epoch: int) -> TownPublic | None:
        k = keys.get(town)
        return k.public if k is not None and k.epoch == epoch else None

    return lookup


@pytest.fixture(scope="module")
def payload(town_keys: dict[str, TownKeys], signers: dict[str, Signer]) -> str:
    signer = signers["15307"]
    return sign_payload(FIELDS, signer.clerk_keys, signer.clerk_cert)


def test_round_trip(payload: str, town_keys: dict[str, TownKeys]) -> None:
    assert payload.startswith(PREFIX)
    verified = verify_payload(payload, lookup_for(town_keys))
    assert verified.fields == FIELDS
    assert verified.clerk.login_id == "clerk307"
    assert any("発行番号: 20261127-15307" in line for line in verified.summary_lines())


@given(st.binary(max_size=200))
def test_base45_round_trip(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), replacement=st.integers(min_value=0, max_value=255))
def test_any_one_character_change_of_the_text_is_rejected(
    payload: str, town_keys: dict[str, TownKeys], position: int, replacement: int
) -> None:
    position %= len(payload)
    char = chr(replacement)
    if char == payload[position]:
        char = chr((replacement + 1) % 256)
    altered = payload[:position] + char + payload[position + 1 :]
    with pytest.raises(PayloadError):
        verify_payload(altered, lookup_for(town_keys))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_one_byte_change_of_the_record_is_rejected(
    payload: str, town_keys: dict[str, TownKeys], position: int, flip: int
) -> None:
    raw = bytearray(b45decode(payload[len(PREFIX) :]))
    raw[position % len(raw)] ^= flip
    with pytest.raises(PayloadError):
        verify_payload(PREFIX + b45encode(bytes(raw)), lookup_for(town_keys))


def test_rejects_another_towns_key_and_a_clerk_of_another_town(
    payload: str, town_keys: dict[str, TownKeys]
) -> None:
    stranger = TownKeys.generate("15307")
    with pytest.raises(PayloadError):
        verify_payload(payload, lambda town, epoch: stranger.public)
    with pytest.raises(PayloadError):
        verify_payload(payload, lambda town, epoch: None)
    # a clerk certified by 出雲崎町 cannot sign for 聖籠町
    other = ClerkKeys.generate("15405", "intruder")
    cert = issue_clerk_certificate(
        town_keys["15405"],
        other.public,
        roles=[Role.CLERK],
        on_roster=True,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    forged = sign_payload(FIELDS, other, cert)
    with pytest.raises(PayloadError, match="clerk certificate"):
        verify_payload(forged, lookup_for(town_keys))
    _, clerk, _, _ = decode_payload(forged)
    assert clerk.town == "15307"  # the certificate is read as the issuing town's: it fails


def scan_first_page(doc: PrintedDocument, tmp_path: Path) -> tuple[Path, list[str]]:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(doc.pdf)
    subprocess.run(
        ["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    png = next(tmp_path.glob("page*.png"))
    out = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(png)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return png, [line for line in out.stdout.splitlines() if line]


@pytest.fixture
def juminhyo(
    exports: dict[str, TownExport],
    make_issue: IssueFactory,
    signers: dict[str, Signer],
    registry: FontRegistry,
) -> PrintedDocument:
    export = exports["15307"]
    household = export.households[1]
    members = [r for r in export.residents if r.household_id == household.id]
    return render_juminhyo(
        make_issue("15307", host_office="出雲崎町役場"),
        household,
        members,
        JuminhyoItems(),
        signers["15307"],
        whole_household=True,
        registry=registry,
    )


@pytest.fixture
def keys_file(tmp_path: Path, town_keys: dict[str, TownKeys]) -> Path:
    path = tmp_path / "town-keys.json"
    path.write_text(json.dumps([k.public.to_json() for k in town_keys.values()]))
    return path


def test_qr_on_the_page_decodes_and_verifies_with_renkei_verify(
    juminhyo: PrintedDocument,
    tmp_path: Path,
    keys_file: Path,
    town_keys: dict[str, TownKeys],
    capsys: pytest.CaptureFixture[str],
) -> None:
    png, scanned = scan_first_page(juminhyo, tmp_path)
    assert scanned == [juminhyo.payload]
    verified = verify_payload(scanned[0], lookup_for(town_keys))
    assert verified.fields.content_digest == juminhyo.content_digest
    assert verified.fields.issue_number == str(juminhyo.number)
    assert verified.fields.pages == juminhyo.pages

    assert main(["verify", scanned[0], "--town-keys", str(keys_file)]) == 0
    assert f"発行番号: {juminhyo.number}" in capsys.readouterr().out
    assert main(["verify", "--image", str(png), "--town-keys", str(keys_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] and result["issue_number"] == str(juminhyo.number)

    payload = scanned[0]
    for position in (0, 4, len(payload) // 2, len(payload) - 1):
        char = "0" if payload[position] != "0" else "1"
        altered = payload[:position] + char + payload[position + 1 :]
        assert main(["verify", altered, "--town-keys", str(keys_file)]) == 1
    assert "無効" in capsys.readouterr().out
    assert main(["verify", payload]) == 1  # no key for the town: cannot vouch for it


def test_the_digest_covers_the_printed_text(juminhyo: PrintedDocument) -> None:
    import hashlib

    assert hashlib.blake2b(juminhyo.text.encode(), digest_size=32).digest() == (
        juminhyo.content_digest
    )
    assert str(juminhyo.number) in juminhyo.text
