"""Box certificates signed by the hub's enrolment issuer (delegated by the root in the
ceremony) verify against the root key alone; forged, expired or mis-chained ones do not,
and an issuer can never certify a town."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from nacl.signing import SigningKey

from shared.crypto import (
    Certificate,
    CertificateError,
    EnrolmentIssuer,
    FederationRoot,
    KeyFormatError,
    TownKeys,
    issue_box_certificate,
    issue_issuer_certificate,
    issue_town_certificate,
    verify_box_certificate,
    verify_town_certificate,
)

NOW = datetime(2026, 4, 1, tzinfo=UTC)


def _issuer(root: FederationRoot, days: int = 365) -> EnrolmentIssuer:
    key = SigningKey.generate()
    cert = issue_issuer_certificate(
        root, key.verify_key, key.to_curve25519_private_key().public_key,
        issued_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=days),
    )  # fmt: skip
    return EnrolmentIssuer(key, cert)


def _box(issuer: EnrolmentIssuer | FederationRoot, days: int = 30) -> Certificate:
    key = SigningKey.generate()
    return issue_box_certificate(
        issuer, "seiro-1", town="15307", sealing_key=key.to_curve25519_private_key().public_key,
        verify_key=key.verify_key, issued_at=NOW, expires_at=NOW + timedelta(days=days),
    )  # fmt: skip


def test_a_chained_box_certificate_verifies_against_the_root_and_round_trips() -> None:
    root = FederationRoot.generate()
    cert = _box(_issuer(root))
    assert cert.chain and cert.issuer != root.key_id
    again = Certificate.from_bytes(cert.to_bytes())
    assert again == cert and again.to_bytes() == cert.to_bytes()
    assert verify_box_certificate(again, root.verify_key, now=NOW + timedelta(days=1)) == cert
    # the root's own box certificates still verify as before, without a chain
    direct = _box(root)
    assert not direct.chain and "chain" not in direct.to_json()
    verify_box_certificate(direct, root.verify_key, now=NOW)


def test_the_box_certificate_never_outlives_its_issuer() -> None:
    root = FederationRoot.generate()
    cert = _box(_issuer(root, days=10), days=400)
    assert cert.expires_at == cert.chain[0].expires_at


@pytest.mark.parametrize("attack", ["other-root", "forged-link", "expired-issuer", "swap-issuer"])
def test_broken_chains_are_refused(attack: str) -> None:
    root = FederationRoot.generate()
    issuer = _issuer(root, days=5)
    cert = _box(issuer, days=3)
    when = NOW + timedelta(days=1)
    if attack == "other-root":
        cert = _box(_issuer(FederationRoot.generate()))
    elif attack == "forged-link":  # an issuer certificate the root never signed
        fake = replace(cert.chain[0], expires_at=NOW + timedelta(days=9000))
        cert = replace(cert, chain=(fake,))
    elif attack == "expired-issuer":
        when = NOW + timedelta(days=6)
        cert = replace(cert, expires_at=NOW + timedelta(days=30))  # (signature breaks too)
    elif attack == "swap-issuer":  # a valid issuer of the same root, but not the signer
        cert = replace(cert, chain=(_issuer(root).certificate,))
    with pytest.raises(CertificateError):
        verify_box_certificate(cert, root.verify_key, now=when)


def test_an_issuer_certifies_boxes_only() -> None:
    root = FederationRoot.generate()
    issuer = _issuer(root)
    with pytest.raises(CertificateError):
        issue_town_certificate(  # type: ignore[arg-type]
            issuer, TownKeys.generate("15307").public, issued_at=NOW,
            expires_at=NOW + timedelta(days=1),
        )  # fmt: skip
    # a town certificate with a chain attached is not accepted either
    town = issue_town_certificate(
        root, TownKeys.generate("15307").public, issued_at=NOW, expires_at=NOW + timedelta(days=1)
    )
    verify_town_certificate(town, root.verify_key, now=NOW)
    data = dict(town.to_json(), chain=[issuer.certificate.to_json()])
    with pytest.raises(KeyFormatError):
        Certificate.from_json(data)
