"""The identity proof a discovered peer must give (edge/peers.py `verify_answer`, pure):
each way of cheating — no enrolment, another root, an expired certificate, a replayed or
relayed answer, a certificate lifted from another box, a tampered statement, TXT hints
that lie — turns the check red."""

from __future__ import annotations

import copy
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from discovery_nodes import box_key, enrol, tls_files

from edge.identity_api import BoxIdentity, SyncInfo, server_cert_der
from edge.peers import Hint, NotEnrolled, NotRenkei, VerificationFailed, verify_answer
from shared.crypto import FederationRoot
from shared.sync.identity import Identity

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("verify")
    root = FederationRoot.generate()
    enrol(tmp / "box", root, "box-15307", "15307")
    tls = tls_files(tmp / "tls", ["10.1.2.3"])
    other_tls = tls_files(tmp / "other-tls", ["10.1.2.4"])
    identity = BoxIdentity.load(
        tmp / "box", "box-15307", "15307", name="聖籠町役場 連携ボックス", tls_cert=tls.cert
    )
    sync_id = Identity.generate().writer_id
    identity.sync = lambda: SyncInfo(sync_id, 8702, {"15307": 12})
    return {
        "tmp": tmp,
        "root": root,
        "identity": identity,
        "der": server_cert_der(tls.cert),
        "other_der": server_cert_der(other_tls.cert),
    }


def check(world: dict[str, Any], answer: object, nonce: str, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "nonce": nonce,
        "root": world["root"].verify_key,
        "now": NOW,
        "tls_der": world["der"],
        "hint": Hint("box-15307", "15307", world["identity"].fingerprint),
    }
    return verify_answer(answer, **{**arguments, **changes})


def fresh(world: dict[str, Any]) -> tuple[dict[str, Any], str]:
    nonce = secrets.token_hex(32)
    return world["identity"].answer(nonce), nonce


def test_a_genuine_answer_verifies(world: dict[str, Any]) -> None:
    answer, nonce = fresh(world)
    statement, cert = check(world, answer, nonce)
    assert (cert.subject, cert.town) == ("box-15307", "15307")
    assert statement.sync_port == 8702 and statement.holdings == {"15307": 12}


def test_an_unenrolled_box_is_an_unknown_device(world: dict[str, Any], tmp_path: Path) -> None:
    box_key(tmp_path)
    unenrolled = BoxIdentity.load(tmp_path, "box-15405", "15405", name="x", tls_cert=None)
    with pytest.raises(NotEnrolled):
        check(world, unenrolled.answer("00" * 32), "00" * 32)
    with pytest.raises(NotRenkei):
        check(world, {"hello": "world"}, "00" * 32)


def test_a_certificate_from_another_root_is_refused(world: dict[str, Any]) -> None:
    answer, nonce = fresh(world)
    with pytest.raises(VerificationFailed, match="another root"):
        check(world, answer, nonce, root=FederationRoot.generate().verify_key)


def test_an_expired_certificate_is_refused(world: dict[str, Any]) -> None:
    answer, nonce = fresh(world)
    with pytest.raises(VerificationFailed, match="valid"):
        check(world, answer, nonce, now=NOW + timedelta(days=365))


def test_a_replayed_answer_is_useless(world: dict[str, Any]) -> None:
    recorded, _ = fresh(world)
    with pytest.raises(VerificationFailed, match="replay"):
        check(world, recorded, secrets.token_hex(32))


def test_an_answer_relayed_through_another_tls_endpoint_is_refused(world: dict[str, Any]) -> None:
    answer, nonce = fresh(world)
    with pytest.raises(VerificationFailed, match="TLS channel"):
        check(world, answer, nonce, tls_der=world["other_der"])
    with pytest.raises(VerificationFailed, match="TLS channel"):
        check(world, answer, nonce, tls_der=None)


def test_a_lifted_certificate_without_its_key_is_refused(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """A rogue copies a real box's certificate (it is public) and signs with its own key."""
    box_key(tmp_path)
    thief = BoxIdentity(
        "box-15307",
        "15307",
        box_key(tmp_path),
        world["identity"].certificate,
        name="聖籠町役場 連携ボックス",
        tls_der=world["der"],
    )
    nonce = secrets.token_hex(32)
    with pytest.raises(VerificationFailed, match="not signed by the certified box key"):
        check(world, thief.answer(nonce), nonce)


def test_a_tampered_statement_is_refused(world: dict[str, Any]) -> None:
    answer, nonce = fresh(world)
    for field, value in (("holdings", {"15307": 9999}), ("sync_port", 9999), ("town", "15405")):
        tampered = copy.deepcopy(answer)
        tampered["statement"][field] = value
        with pytest.raises(VerificationFailed):
            check(world, tampered, nonce)


def test_txt_hints_that_do_not_match_the_proof_are_refused(world: dict[str, Any]) -> None:
    answer, nonce = fresh(world)
    fp = world["identity"].fingerprint
    for hint in (Hint("box-99999", "15307", fp), Hint("box-15307", "15405", fp),
                 Hint("box-15307", "15307", "ab" * 32)):  # fmt: skip
        with pytest.raises(VerificationFailed, match="advertised"):
            check(world, answer, nonce, hint=hint)
    check(world, answer, nonce, hint=Hint())  # hints are optional


def test_a_certificate_for_another_key_is_not_presented(tmp_path: Path) -> None:
    """A box whose installed certificate certifies some other key acts as not enrolled
    (every peer would refuse it anyway)."""
    root = FederationRoot.generate()
    enrol(tmp_path / "a", root, "box-a", "15307")
    box_key(tmp_path / "b")
    (tmp_path / "b" / "box.cert.json").write_bytes((tmp_path / "a" / "box.cert.json").read_bytes())
    identity = BoxIdentity.load(tmp_path / "b", "box-a", "15307", name="x", tls_cert=None)
    assert identity.certificate is None
    assert identity.answer("00" * 32)["enrolled"] is False
