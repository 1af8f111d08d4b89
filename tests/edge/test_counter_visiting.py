"""A visiting clerk at a partner's counter (case 2/3): under an activation signed by
their town's deputy and entered by a host supervisor, a clerk of 出雲崎町 issues their
own town's 住民票の写し on 聖籠町's box — with the stricken town's 認証者, the partner-box
wording naming the host office, the stricken town's 発行番号 — and it goes in the
stricken town's audit chain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from counter_federation import PASSWORD, CounterBox, audit_entries, counter_box, csrf
from test_counter_documents import issued, pdftext

from edge.boxkey import box_code, box_signing_key
from edge.counter import registers_storage
from edge.replica import BoxReplica
from shared.activation import issue_activation
from shared.export_csv import read_town
from shared.issuance.registers import IssuanceRegister
from shared.storage import SqliteStorage


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[CounterBox]:
    with counter_box(tmp_path_factory.mktemp("visit"), small_export_dir, {}, partner=True) as box:
        yield box


def test_visiting_clerk_issues_their_towns_certificate_at_the_partner_box(
    fed: CounterBox, small_export_dir: Path, tmp_path: Path
) -> None:
    assert fed.deputy is not None
    now = time.time()
    activation = issue_activation(
        fed.deputy, host_town="15307", host_box="box-15307", clerks=[fed.visitor],
        not_before=now - 120, expires_at=now + 3600,
    )  # fmt: skip
    with fed.client() as boss:
        fed.log_in(boss, fed.supervisor)
        page = boss.get("/activation")
        entered = boss.post("/activation", data={"csrf_token": csrf(page.text),
                                                 "code": activation.to_code()})  # fmt: skip
        assert "受け付けました" in entered.text
    town = read_town(small_export_dir / "15405")
    blocked = {p for b in town.support_blocks for p in b.protected_ids}
    person = next(r for r in town.residents if r.removal is None and r.id not in blocked)
    with fed.client() as visitor:
        fed.log_in(visitor, fed.visitor, town="15405")
        page = visitor.get(f"/resident/{person.id}")
        assert page.status_code == 200 and "連携窓口" in page.text
        response = visitor.post("/issue", data={
            "csrf_token": csrf(page.text), "document": "juminhyo", "subject": person.id,
            "requester": "本人", "applicant_name": person.name, "applicant_id": person.id,
            "identity": "顔写真付き書類1点", "documents": "運転免許証",
        })  # fmt: skip
        number = issued(response).split("-", 1)[1]
    assert number.split("-")[1] == "15405"  # the stricken town's number series
    text = pdftext(response.content, tmp_path, "visiting").replace(" ", "")
    for words in ("聖籠町役場に設置した出雲崎町の臨時窓口で発行しました", "出雲崎町長",
                  "偽造防止用紙ではない普通紙", "現在の記録による"):  # fmt: skip
        assert words in text, (words, text[-1500:])
    report, entries = audit_entries(fed, fed.visitor, town="15405")
    assert report.ok, report.summary()
    entry = next(e.details for e in entries if e.kind == "issuance")
    assert entry["number"] == number and entry["visiting"] is True
    # The 交付簿 (sealed to 出雲崎町) names the host office: the fee is 出雲崎町's revenue,
    # held by 聖籠町's cashier (日計表).
    storage = SqliteStorage(fed.data / "replica.db")
    try:
        keyring = BoxReplica(storage).unlock("15405", fed.visitor, PASSWORD).keyring
        registers = registers_storage(
            storage, keyring, box_code(fed.data), box_signing_key(fed.data)
        )
        register_entry = IssuanceRegister(registers, "15405").get(number)
    finally:
        storage.close()
    assert register_entry is not None
    assert (register_entry.host_town_code, register_entry.visiting) == ("15307", True)
